/** kafkajs's request queue class (an internal module, patched by kafkajs-fixes.ts); only its prototype is used. */
declare module 'kafkajs/src/network/requestQueue/index.js' {
  const RequestQueue: { prototype?: unknown } | undefined;
  export default RequestQueue;
}
