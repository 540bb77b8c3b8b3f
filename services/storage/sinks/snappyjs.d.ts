/** Types of `snappyjs` (the package ships none): Snappy block-format compression in plain JS. */
declare module 'snappyjs' {
  /** Compresses in Snappy's block format; returns the input's type. */
  export function compress<T extends Uint8Array | ArrayBuffer>(input: T): T;
  /** Decompresses a Snappy block; throws on corrupt input or output longer than `maxLength`. */
  export function uncompress<T extends Uint8Array | ArrayBuffer>(input: T, maxLength?: number): T;
  const snappy: { compress: typeof compress; uncompress: typeof uncompress };
  export default snappy;
}
