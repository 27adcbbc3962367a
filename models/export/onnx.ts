/**
 * Exports a LogisticModel to ONNX bytes with no python and no protobuf library.
 *
 * The contract (input/output names, metadata keys) is src/model/contract.ts, which the runtime checks.
 * Graph (opset 13, default domain):
 *   features float32 [N, F] -> Sub(mean) -> Div(std) -> MatMul(W [F, 1]) -> Add(b) -> Sigmoid -> probability [N, 1]
 *
 * Field numbers below are from onnx/onnx.proto (IR version 8). Initializers are stored as raw_data,
 * little-endian float32, as the spec requires for raw tensor data.
 */
import type { FeatureSpec } from '../../src/features/types.js';
import { INPUT_NAME, METADATA_KEYS, OUTPUT_NAME } from '../../src/model/contract.js';
import type { LogisticModel } from '../train/logreg.js';
import { MessageWriter, readFields } from './protobuf.js';

const IR_VERSION = 8;
const OPSET = 13;
/** TensorProto.DataType.FLOAT */
const FLOAT = 1;

export interface ExportMeta {
  target?: string;
  version?: string;
}

/** TensorProto: dims = 1, data_type = 2, name = 8, raw_data = 9. */
function floatTensor(name: string, dims: number[], values: number[]): MessageWriter {
  const raw = new Uint8Array(values.length * 4);
  const view = new DataView(raw.buffer);
  values.forEach((v, i) => {
    view.setFloat32(i * 4, v, true);
  });
  const t = new MessageWriter();
  for (const d of dims) t.int(1, d);
  return t.int(2, FLOAT).string(8, name).bytes(9, raw);
}

/**
 * ValueInfoProto: name = 1, type = 2.
 * TypeProto: tensor_type = 1; TypeProto.Tensor: elem_type = 1, shape = 2;
 * TensorShapeProto: dim = 1; Dimension: dim_value = 1, dim_param = 2.
 */
function floatValueInfo(name: string, shape: (number | string)[]): MessageWriter {
  const tensorShape = new MessageWriter();
  for (const d of shape) {
    const dim = typeof d === 'string' ? new MessageWriter().string(2, d) : new MessageWriter().int(1, d);
    tensorShape.message(1, dim);
  }
  const tensorType = new MessageWriter().int(1, FLOAT).message(2, tensorShape);
  const type = new MessageWriter().message(1, tensorType);
  return new MessageWriter().string(1, name).message(2, type);
}

/** NodeProto: input = 1, output = 2, name = 3, op_type = 4. */
function node(opType: string, inputs: string[], output: string): MessageWriter {
  const n = new MessageWriter();
  for (const i of inputs) n.string(1, i);
  return n.string(2, output).string(3, `${opType.toLowerCase()}_${output}`).string(4, opType);
}

/** StringStringEntryProto: key = 1, value = 2. */
function entry(key: string, value: string): MessageWriter {
  return new MessageWriter().string(1, key).string(2, value);
}

export function exportLogisticOnnx(
  model: LogisticModel,
  spec: FeatureSpec,
  meta: ExportMeta = {},
): Uint8Array {
  const f = model.weights.length;
  if (model.mean.length !== f || model.std.length !== f) {
    throw new RangeError(
      `model has ${f} weights but ${model.mean.length} means and ${model.std.length} stds`,
    );
  }
  for (const [name, values] of Object.entries({ weights: model.weights, mean: model.mean, std: model.std })) {
    if (!values.every(Number.isFinite)) throw new RangeError(`model ${name} contain a non-finite value`);
  }
  if (!Number.isFinite(model.bias)) throw new RangeError(`model bias is not finite (${model.bias})`);
  if (spec.features.length !== f) {
    throw new RangeError(`feature spec has ${spec.features.length} features but the model has ${f} weights`);
  }

  // GraphProto: node = 1, name = 2, initializer = 5, input = 11, output = 12.
  const graph = new MessageWriter()
    .message(1, node('Sub', [INPUT_NAME, 'mean'], 'centered'))
    .message(1, node('Div', ['centered', 'std'], 'standardized'))
    .message(1, node('MatMul', ['standardized', 'W'], 'logit_no_bias'))
    .message(1, node('Add', ['logit_no_bias', 'b'], 'logit'))
    .message(1, node('Sigmoid', ['logit'], OUTPUT_NAME))
    .string(2, 'quotewatch_logistic')
    .message(5, floatTensor('mean', [f], model.mean))
    .message(5, floatTensor('std', [f], model.std))
    .message(5, floatTensor('W', [f, 1], model.weights))
    .message(5, floatTensor('b', [1], [model.bias]))
    .message(11, floatValueInfo(INPUT_NAME, ['N', f]))
    .message(12, floatValueInfo(OUTPUT_NAME, ['N', 1]));

  // ModelProto: ir_version = 1, producer_name = 2, graph = 7, opset_import = 8, metadata_props = 14.
  // OperatorSetIdProto: domain = 1 (empty = default ONNX domain, so omitted), version = 2.
  const modelProto = new MessageWriter()
    .int(1, IR_VERSION)
    .string(2, 'quotewatch')
    .message(7, graph)
    .message(8, new MessageWriter().int(2, OPSET))
    .message(14, entry(METADATA_KEYS.featureNames, JSON.stringify(spec.features.map((d) => d.name))))
    .message(14, entry(METADATA_KEYS.featureSpecVersion, String(spec.version)))
    .message(14, entry(METADATA_KEYS.tickMs, String(spec.tickMs)));
  if (meta.target) modelProto.message(14, entry(METADATA_KEYS.target, meta.target));
  if (meta.version) modelProto.message(14, entry(METADATA_KEYS.version, meta.version));
  return modelProto.finish();
}

/** Reads metadata_props (ModelProto field 14) back from ONNX bytes. */
export function readOnnxMetadata(bytes: Uint8Array): Record<string, string> {
  const text = new TextDecoder();
  const out: Record<string, string> = {};
  for (const { field, value } of readFields(bytes)) {
    if (field !== 14 || typeof value === 'number') continue;
    const kv = readFields(value);
    const key = kv.find((e) => e.field === 1)?.value;
    const val = kv.find((e) => e.field === 2)?.value;
    if (key instanceof Uint8Array) out[text.decode(key)] = val instanceof Uint8Array ? text.decode(val) : '';
  }
  return out;
}
