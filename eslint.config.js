// ESLint flat config: typescript-eslint with type information; plumbing imported only through services/common.
import tseslint from 'typescript-eslint';

/** Libraries that only services/common may import (README "Project layout": the plumbing lives in one place). */
const PLUMBING = ['kafkajs', 'avsc', 'pg', '@electric-sql/pglite', 'winston', 'opossum', 'prom-client', '@grpc/grpc-js', '@grpc/proto-loader', 'protobufjs', 'lru-cache'];

export default tseslint.config(
  { ignores: ['node_modules/**', '.bkstream/**', 'data/**', '.tmp/**', 'services/console/dist*/**', 'services/agent/dist/**', 'eslint.config.js', '.dependency-cruiser.cjs'] },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      // Async functions often implement async interfaces (handlers, start/stop) without awaiting.
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': 'error',
      'no-restricted-imports': ['error', {
        paths: PLUMBING.map((name) => ({ name, message: 'import the plumbing from services/common instead' })),
        patterns: [{ group: ['kafkajs/*', 'avsc/*', 'pg/*', '@electric-sql/pglite/*', 'protobufjs/*', '@grpc/*/*', 'lru-cache/*'], message: 'import the plumbing from services/common instead' }],
      }],
    },
  },
  {
    // The plumbing itself, and tools that must talk to the broker/store directly.
    files: ['services/common/**/*.ts'],
    rules: { 'no-restricted-imports': 'off' },
  },
  {
    // Command-line scripts and benchmarks print to the terminal.
    files: ['scripts/**/*.ts', 'bench/**/*.ts', 'services/cli/**/*.ts'],
    rules: { 'no-console': 'off' },
  },
);
