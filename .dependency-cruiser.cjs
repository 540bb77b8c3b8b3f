/**
 * The import graph's rules (`npm run lint` runs them with `depcruise`):
 * - no import cycles anywhere;
 * - a service imports only `services/common/` and its own folder (the CLI composes every service: `bkstream up`);
 * - `services/common/` imports no service.
 */
module.exports = {
  forbidden: [
    {
      name: 'no-cycles',
      severity: 'error',
      comment: 'Import cycles make start-up order and refactors fragile: break them with a small shared module.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'services-import-only-common-and-themselves',
      severity: 'error',
      comment: 'A service may import services/common/ and its own folder, nothing of another service.',
      from: { path: '^services/(?!common/|cli/)([^/]+)/' },
      to: { path: '^services/', pathNot: ['^services/common/', '^services/$1/'] },
    },
    {
      name: 'common-imports-no-service',
      severity: 'error',
      comment: 'services/common/ is the plumbing every service imports; it must not depend on any of them.',
      from: { path: '^services/common/' },
      to: { path: '^services/(?!common/)' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|data|\\.bkstream|\\.tmp)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js', '.json'] },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
