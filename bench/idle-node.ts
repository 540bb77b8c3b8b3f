/** The benchmarks' idle baseline: a Node process running a TypeScript entry that does nothing but wait. */
const forever: number = 2 ** 30;
setInterval(() => undefined, forever);
