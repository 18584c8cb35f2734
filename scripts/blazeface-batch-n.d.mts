/** The batch-N copy of a batch-1 BlazeFace ONNX file, as bytes (see blazeface-batch-n.mjs). */
export function blazefaceBatchN(bytes: Uint8Array): Promise<Uint8Array>;
