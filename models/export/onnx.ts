/**
 * Exports models to ONNX bytes with no python and no protobuf library.
 *
 * The contract (input/output names, metadata keys) is src/model/contract.ts, which the runtime checks.
 * Logistic regression (opset 13, default domain):
 *   features float32 [N, F] -> Sub(mean) -> Div(std) -> MatMul(W [F, 1]) -> Add(b) -> Sigmoid -> probability [N, 1]
 * Gradient-boosted trees (ai.onnx.ml opset 5 TreeEnsemble, default domain opset 21 for the Sigmoid; no ZipMap):
 *   features float32 [N, F] -> TreeEnsemble (sum of the trees' leaves = the margin) -> Sigmoid -> probability [N, 1]
 *   boosted from a regression: Add(the regression's log-odds as above, the TreeEnsemble's sum) -> Sigmoid
 *
 * Field numbers below are from onnx/onnx.proto (IR version 8). Initializers are stored as raw_data,
 * little-endian float32, as the spec requires for raw tensor data.
 */
import type { FeatureSpec } from '../../src/features/types.js';
import { INPUT_NAME, METADATA_KEYS, OUTPUT_NAME } from '../../src/model/contract.js';
import type { TreeModel } from '../train/gbdt.js';
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

/** TensorProto.DataType.UINT8 */
const UINT8 = 2;

/** TensorProto of raw uint8 values. */
function uint8Tensor(name: string, values: ArrayLike<number>): MessageWriter {
  return new MessageWriter()
    .int(1, values.length)
    .int(2, UINT8)
    .string(8, name)
    .bytes(9, Uint8Array.from(values));
}

/**
 * AttributeProto: name = 1, i = 3, t = 5, ints = 8, type = 20 (AttributeType INT = 2, TENSOR = 4, INTS = 7).
 * Repeated ints are written unpacked (one field each), which every protobuf parser accepts.
 */
const attribute = {
  int: (name: string, v: number) => new MessageWriter().string(1, name).int(3, v).int(20, 2),
  ints: (name: string, vs: ArrayLike<number>) => {
    const a = new MessageWriter().string(1, name);
    for (let i = 0; i < vs.length; i++) a.int(8, vs[i]!);
    return a.int(20, 7);
  },
  tensor: (name: string, t: MessageWriter) => new MessageWriter().string(1, name).message(5, t).int(20, 4),
};

/** StringStringEntryProto: key = 1, value = 2. */
function entry(key: string, value: string): MessageWriter {
  return new MessageWriter().string(1, key).string(2, value);
}

/**
 * The regression's log-odds as graph nodes and initializers, `INPUT_NAME` -> `output`: Sub(mean) -> Div(std) ->
 * MatMul(W) -> Add(b). Inputs on a log scale (`logFloor`) first become x * (1 - m) + ln(relu(x * m) + c) * m, m the
 * 0/1 mask of those inputs and c their floor (1 elsewhere: ln 1 = 0). Checks the parameters first.
 */
function logisticNodes(graph: MessageWriter, model: LogisticModel, f: number, output: string): MessageWriter {
  if (model.weights.length !== f || model.mean.length !== f || model.std.length !== f) {
    throw new RangeError(
      `model has ${model.weights.length} weights, ${model.mean.length} means and ${model.std.length} stds for ${f} features`,
    );
  }
  for (const [name, values] of Object.entries({ weights: model.weights, mean: model.mean, std: model.std })) {
    if (!values.every(Number.isFinite)) throw new RangeError(`model ${name} contain a non-finite value`);
  }
  if (!Number.isFinite(model.bias)) throw new RangeError(`model bias is not finite (${model.bias})`);
  const floor = model.logFloor;
  let input = INPUT_NAME;
  if (floor && (floor.length !== f || !floor.every((c) => Number.isFinite(c) && c >= 0)))
    throw new RangeError(`model logFloor must hold ${f} finite values >= 0`);
  if (floor?.some((c) => c > 0)) {
    const mask = floor.map((c) => (c > 0 ? 1 : 0));
    graph
      .message(1, node('Mul', [INPUT_NAME, 'log_mask'], 'log_part'))
      .message(1, node('Relu', ['log_part'], 'log_part_pos'))
      .message(1, node('Add', ['log_part_pos', 'log_floor'], 'log_arg'))
      .message(1, node('Log', ['log_arg'], 'log_all'))
      .message(1, node('Mul', ['log_all', 'log_mask'], 'logged'))
      .message(1, node('Mul', [INPUT_NAME, 'linear_mask'], 'linear_part'))
      .message(1, node('Add', ['linear_part', 'logged'], 'scaled'))
      .message(5, floatTensor('log_mask', [f], mask))
      .message(
        5,
        floatTensor(
          'linear_mask',
          [f],
          mask.map((m) => 1 - m),
        ),
      )
      .message(
        5,
        floatTensor(
          'log_floor',
          [f],
          floor.map((c) => (c > 0 ? c : 1)),
        ),
      );
    input = 'scaled';
  }
  // GraphProto: node = 1, initializer = 5.
  return graph
    .message(1, node('Sub', [input, 'mean'], 'centered'))
    .message(1, node('Div', ['centered', 'std'], 'standardized'))
    .message(1, node('MatMul', ['standardized', 'W'], 'logit_no_bias'))
    .message(1, node('Add', ['logit_no_bias', 'b'], output))
    .message(5, floatTensor('mean', [f], model.mean))
    .message(5, floatTensor('std', [f], model.std))
    .message(5, floatTensor('W', [f, 1], model.weights))
    .message(5, floatTensor('b', [1], [model.bias]));
}

export function exportLogisticOnnx(
  model: LogisticModel,
  spec: FeatureSpec,
  meta: ExportMeta = {},
): Uint8Array {
  const f = model.weights.length;
  if (spec.features.length !== f) {
    throw new RangeError(`feature spec has ${spec.features.length} features but the model has ${f} weights`);
  }

  // GraphProto: node = 1, name = 2, initializer = 5, input = 11, output = 12.
  const graph = logisticNodes(new MessageWriter(), model, f, 'logit')
    .message(1, node('Sigmoid', ['logit'], OUTPUT_NAME))
    .string(2, 'quotewatch_logistic')
    .message(11, floatValueInfo(INPUT_NAME, ['N', f]))
    .message(12, floatValueInfo(OUTPUT_NAME, ['N', 1]));

  // ModelProto: ir_version = 1, producer_name = 2, graph = 7, opset_import = 8, metadata_props = 14.
  // OperatorSetIdProto: domain = 1 (empty = default ONNX domain, so omitted), version = 2.
  const modelProto = new MessageWriter()
    .int(1, IR_VERSION)
    .string(2, 'quotewatch')
    .message(7, graph)
    .message(8, new MessageWriter().int(2, OPSET));
  return withMetadata(modelProto, spec, meta).finish();
}

const ML_DOMAIN = 'ai.onnx.ml';
const ML_OPSET = 5;
/** The default-domain opset released with ai.onnx.ml 5 (ONNX 1.16), and the IR version it needs. */
const TREE_OPSET = 21;
const TREE_IR_VERSION = 10;
/** TreeEnsemble nodes_modes: 0 = BRANCH_LEQ (x <= split goes to the true branch). */
const BRANCH_LEQ = 0;

/**
 * Exports a TreeModel (models/train/gbdt.ts) as ONE ai.onnx.ml TreeEnsemble (opset 5) summing every tree's leaf,
 * then Sigmoid. Interior nodes: x[feature] <= split goes to the true (left) child, NaN goes where the tree
 * learnt (nodes_missing_value_tracks_true); leaves are their own list (nodes_trueleafs / nodes_falseleafs say
 * which ids are leaves). A tree that never split is one node whose both branches reach its single leaf.
 */
export function exportTreeOnnx(model: TreeModel, spec: FeatureSpec, meta: ExportMeta = {}): Uint8Array {
  const f = model.features;
  if (spec.features.length !== f) {
    throw new RangeError(`feature spec has ${spec.features.length} features but the model takes ${f}`);
  }
  if (model.trees.length === 0) throw new RangeError('a tree model needs at least one tree');
  const featureIds: number[] = [];
  const splits: number[] = [];
  const trueIds: number[] = [];
  const trueLeafs: number[] = [];
  const falseIds: number[] = [];
  const falseLeafs: number[] = [];
  const missingTrue: number[] = [];
  const leafWeights: number[] = [];
  const roots: number[] = [];
  for (const [t, tree] of model.trees.entries()) {
    const leafOf = new Map<number, number>();
    const nodeOf = new Map<number, number>();
    // Number interior nodes and leaves first, so children can be referred to by their global ids.
    for (let i = 0; i < tree.feature.length; i++) {
      if (tree.feature[i]! < 0) {
        if (!Number.isFinite(tree.value[i]!)) throw new RangeError(`tree ${t} leaf ${i} is not finite`);
        leafOf.set(i, leafWeights.length);
        leafWeights.push(tree.value[i]!);
      } else {
        if (tree.feature[i]! >= f)
          throw new RangeError(`tree ${t} node ${i} splits on feature ${tree.feature[i]}`);
        nodeOf.set(i, featureIds.length + nodeOf.size);
      }
    }
    const branch = (child: number): [number, number] =>
      leafOf.has(child) ? [leafOf.get(child)!, 1] : [nodeOf.get(child)!, 0];
    if (nodeOf.size === 0) {
      roots.push(featureIds.length);
      const leaf = leafOf.get(0)!;
      featureIds.push(0);
      splits.push(0);
      trueIds.push(leaf);
      trueLeafs.push(1);
      falseIds.push(leaf);
      falseLeafs.push(1);
      missingTrue.push(1);
      continue;
    }
    roots.push(nodeOf.get(0)!);
    for (let i = 0; i < tree.feature.length; i++) {
      if (tree.feature[i]! < 0) continue;
      const [tId, tLeaf] = branch(tree.left[i]!);
      const [fId, fLeaf] = branch(tree.right[i]!);
      featureIds.push(tree.feature[i]!);
      splits.push(tree.threshold[i]!);
      trueIds.push(tId);
      trueLeafs.push(tLeaf);
      falseIds.push(fId);
      falseLeafs.push(fLeaf);
      missingTrue.push(tree.missingLeft[i]!);
    }
  }
  // Boosted from a regression: its log-odds and the trees' sum are added before the Sigmoid.
  const treeOutput = model.linear ? 'tree_margin' : 'margin';
  const ensemble = new MessageWriter()
    .string(1, INPUT_NAME)
    .string(2, treeOutput)
    .string(3, 'tree_ensemble')
    .string(4, 'TreeEnsemble')
    .message(5, attribute.int('aggregate_function', 1))
    .message(5, attribute.ints('leaf_targetids', new Array(leafWeights.length).fill(0)))
    .message(
      5,
      attribute.tensor('leaf_weights', floatTensor('leaf_weights', [leafWeights.length], leafWeights)),
    )
    .message(5, attribute.int('n_targets', 1))
    .message(5, attribute.ints('nodes_falseleafs', falseLeafs))
    .message(5, attribute.ints('nodes_falsenodeids', falseIds))
    .message(5, attribute.ints('nodes_featureids', featureIds))
    .message(5, attribute.ints('nodes_missing_value_tracks_true', missingTrue))
    .message(
      5,
      attribute.tensor(
        'nodes_modes',
        uint8Tensor('nodes_modes', new Array(featureIds.length).fill(BRANCH_LEQ)),
      ),
    )
    .message(5, attribute.tensor('nodes_splits', floatTensor('nodes_splits', [splits.length], splits)))
    .message(5, attribute.ints('nodes_trueleafs', trueLeafs))
    .message(5, attribute.ints('nodes_truenodeids', trueIds))
    .message(5, attribute.int('post_transform', 0))
    .message(5, attribute.ints('tree_roots', roots))
    .string(7, ML_DOMAIN);
  let graph = new MessageWriter().message(1, ensemble);
  if (model.linear)
    graph = logisticNodes(graph, model.linear, f, 'linear_margin').message(
      1,
      node('Add', ['linear_margin', 'tree_margin'], 'margin'),
    );
  graph = graph
    .message(1, node('Sigmoid', ['margin'], OUTPUT_NAME))
    .string(2, 'quotewatch_gbdt')
    .message(11, floatValueInfo(INPUT_NAME, ['N', f]))
    .message(12, floatValueInfo(OUTPUT_NAME, ['N', 1]));
  const modelProto = new MessageWriter()
    .int(1, TREE_IR_VERSION)
    .string(2, 'quotewatch')
    .message(7, graph)
    .message(8, new MessageWriter().int(2, TREE_OPSET))
    .message(8, new MessageWriter().string(1, ML_DOMAIN).int(2, ML_OPSET));
  return withMetadata(modelProto, spec, meta).finish();
}

/** The metadata every exported model carries (the feature spec it takes, its target and version). */
function withMetadata(modelProto: MessageWriter, spec: FeatureSpec, meta: ExportMeta): MessageWriter {
  modelProto
    .message(14, entry(METADATA_KEYS.featureNames, JSON.stringify(spec.features.map((d) => d.name))))
    .message(14, entry(METADATA_KEYS.featureSpecVersion, String(spec.version)))
    .message(14, entry(METADATA_KEYS.tickMs, String(spec.tickMs)));
  if (spec.set) modelProto.message(14, entry(METADATA_KEYS.featureSet, spec.set));
  if (meta.target) modelProto.message(14, entry(METADATA_KEYS.target, meta.target));
  if (meta.version) modelProto.message(14, entry(METADATA_KEYS.version, meta.version));
  return modelProto;
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
