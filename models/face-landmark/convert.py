#!/usr/bin/env python3
"""Converts MediaPipe's face_landmark.tflite and iris_landmark.tflite (mediapipe 0.10.14 wheel,
Apache-2.0) to ONNX with a dynamic batch dimension, then checks each ONNX against the TFLite
interpreter on real crops and writes the reference outputs used by the TypeScript tests.

The two graphs use only CONV_2D, DEPTHWISE_CONV_2D, PRELU, ADD, MAX_POOL_2D, PAD, RESHAPE and
DEQUANTIZE (fp16 weights), so this is a small direct translator (the `tflite` flatbuffer
package reads the graph, `onnx` writes it) rather than tf2onnx, which would need all of
TensorFlow. Activations stay NCHW inside the ONNX graph; the input stays NHWC like the TFLite
model (interleaved RGB is what the service has), one Transpose after it.

Usage (from the repository root):
  python3 -m venv .cache/lm-venv && .cache/lm-venv/bin/pip install -r models/face-landmark/requirements.txt
  pip download mediapipe==0.10.14 --no-deps --only-binary=:all: -d .cache/mp
  (cd .cache/mp && unzip -o mediapipe-0.10.14-*.whl 'mediapipe/modules/*landmark/*.tflite')
  .cache/lm-venv/bin/python models/face-landmark/convert.py --tflite-dir .cache/mp/mediapipe/modules
"""
import argparse
import hashlib
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
import tflite
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
OPSET = 17

OP = {v: k for k, v in tflite.BuiltinOperator.__dict__.items() if not k.startswith('_')}
NP_TYPE = {tflite.TensorType.FLOAT32: np.float32, tflite.TensorType.FLOAT16: np.float16,
           tflite.TensorType.INT32: np.int32}


def tensor_value(model, t):
    """A constant tensor's data as a numpy array, or None when the tensor is computed."""
    buf = model.Buffers(t.Buffer())
    if buf is None or buf.DataLength() == 0:
        return None
    data = buf.DataAsNumpy().tobytes()
    return np.frombuffer(data, dtype=NP_TYPE[t.Type()]).reshape(t.ShapeAsNumpy())


def same_pads(in_hw, k_hw, stride, dil=(1, 1)):
    """TensorFlow SAME padding (the extra pixel goes at the end), as ONNX [top, left, bottom, right]."""
    begin, end = [], []
    for i in range(2):
        out = -(-in_hw[i] // stride[i])
        total = max((out - 1) * stride[i] + (k_hw[i] - 1) * dil[i] + 1 - in_hw[i], 0)
        begin.append(total // 2)
        end.append(total - total // 2)
    return begin + end


def convert(tflite_path, onnx_path, out_names, graph_name):
    model = tflite.Model.GetRootAsModel(open(tflite_path, 'rb').read(), 0)
    g = model.Subgraphs(0)
    nodes, inits = [], []
    consts = {}  # tensor index -> numpy (dequantized fp32 where the source is fp16)
    shape = {}   # tensor index -> NHWC static shape
    flat = set()  # tensors already in NHWC memory order (RESHAPE outputs)
    name = lambda i: g.Tensors(i).Name().decode()
    for i in range(g.TensorsLength()):
        t = g.Tensors(i)
        shape[i] = [int(d) for d in t.ShapeAsNumpy()] if t.ShapeLength() else []
        v = tensor_value(model, t)
        if v is not None:
            consts[i] = v

    def init(arr, nm):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), nm))
        return nm

    def act(out_name, fused, tmp):
        if fused == tflite.ActivationFunctionType.NONE:
            return out_name
        if fused == tflite.ActivationFunctionType.RELU:
            nodes.append(helper.make_node('Relu', [tmp], [out_name]))
            return tmp
        raise NotImplementedError(f'fused activation {fused}')

    in_idx = g.Inputs(0)
    in_shape = shape[in_idx]
    graph_in = helper.make_tensor_value_info('input', TensorProto.FLOAT, ['N', in_shape[1], in_shape[2], in_shape[3]])
    nodes.append(helper.make_node('Transpose', ['input'], [name(in_idx)], perm=[0, 3, 1, 2]))

    for oi in range(g.OperatorsLength()):
        op = g.Operators(oi)
        oc = model.OperatorCodes(op.OpcodeIndex())
        kind = OP[max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())]
        ins = [op.Inputs(j) for j in range(op.InputsLength())]
        outs = [op.Outputs(j) for j in range(op.OutputsLength())]
        o = name(outs[0])
        if kind == 'DEQUANTIZE':
            consts[outs[0]] = consts[ins[0]].astype(np.float32)
            continue
        if kind in ('CONV_2D', 'DEPTHWISE_CONV_2D'):
            opt_cls = tflite.Conv2DOptions if kind == 'CONV_2D' else tflite.DepthwiseConv2DOptions
            opt = opt_cls()
            bo = op.BuiltinOptions()
            opt.Init(bo.Bytes, bo.Pos)
            w = consts[ins[1]].astype(np.float32)
            b = consts[ins[2]].astype(np.float32) if len(ins) > 2 and ins[2] >= 0 else None
            stride = (opt.StrideH(), opt.StrideW())
            dil = (opt.DilationHFactor(), opt.DilationWFactor())
            c_in = shape[ins[0]][3]
            if kind == 'CONV_2D':
                w_onnx, group = w.transpose(0, 3, 1, 2), 1  # OHWI -> OIHW
            else:
                if opt.DepthMultiplier() not in (0, 1):
                    raise NotImplementedError('depth multiplier')
                w_onnx, group = w.transpose(3, 0, 1, 2), c_in  # 1HWC -> C1HW
            kh, kw = w_onnx.shape[2], w_onnx.shape[3]
            pads = same_pads(shape[ins[0]][1:3], (kh, kw), stride, dil) if opt.Padding() == tflite.Padding.SAME else [0, 0, 0, 0]
            args = [name(ins[0]), init(w_onnx, o + '_w')] + ([init(b, o + '_b')] if b is not None else [])
            tmp = o + '_pre'
            target = act(o, opt.FusedActivationFunction(), tmp)
            nodes.append(helper.make_node('Conv', args, [target], strides=list(stride), dilations=list(dil),
                                          pads=pads, group=group, kernel_shape=[kh, kw]))
        elif kind == 'PRELU':
            alpha = consts[ins[1]].astype(np.float32).reshape(-1, 1, 1)
            nodes.append(helper.make_node('PRelu', [name(ins[0]), init(alpha, o + '_alpha')], [o]))
        elif kind == 'ADD':
            opt = tflite.AddOptions()
            bo = op.BuiltinOptions()
            opt.Init(bo.Bytes, bo.Pos)
            for j in ins:
                if j in consts:
                    raise NotImplementedError('ADD with a constant operand')
            target = act(o, opt.FusedActivationFunction(), o + '_pre')
            nodes.append(helper.make_node('Add', [name(ins[0]), name(ins[1])], [target]))
        elif kind == 'MAX_POOL_2D':
            opt = tflite.Pool2DOptions()
            bo = op.BuiltinOptions()
            opt.Init(bo.Bytes, bo.Pos)
            k = (opt.FilterHeight(), opt.FilterWidth())
            stride = (opt.StrideH(), opt.StrideW())
            pads = same_pads(shape[ins[0]][1:3], k, stride) if opt.Padding() == tflite.Padding.SAME else [0, 0, 0, 0]
            if any(pads):
                raise NotImplementedError('padded max pool')  # TF excludes pad cells; ONNX would too, but unchecked
            target = act(o, opt.FusedActivationFunction(), o + '_pre')
            nodes.append(helper.make_node('MaxPool', [name(ins[0])], [target], kernel_shape=list(k), strides=list(stride)))
        elif kind == 'PAD':
            p = consts[ins[1]].astype(np.int64)  # NHWC rows of [before, after]
            nchw = p[[0, 3, 1, 2]]
            pads = np.concatenate([nchw[:, 0], nchw[:, 1]])
            nodes.append(helper.make_node('Pad', [name(ins[0]), init(pads, o + '_pads')], [o], mode='constant'))
        elif kind == 'RESHAPE':
            # TFLite reshapes NHWC memory order: go back to NHWC first, keep the batch dynamic.
            target = [int(x) for x in shape[outs[0]]]
            nodes.append(helper.make_node('Transpose', [name(ins[0])], [o + '_nhwc'], perm=[0, 2, 3, 1]))
            nodes.append(helper.make_node('Reshape', [o + '_nhwc', init(np.array([-1] + target[1:], np.int64), o + '_shape')], [o + '_flat']))
            shape[outs[0]] = target
            nodes.append(helper.make_node('Identity', [o + '_flat'], [o]))
            flat.add(outs[0])
        else:
            raise NotImplementedError(kind)

    graph_outs = []
    for j in range(g.OutputsLength()):
        idx = g.Outputs(j)
        size = int(np.prod(shape[idx][1:]))
        src = name(idx)
        if idx not in flat:  # NCHW activation: back to NHWC order before flattening
            nodes.append(helper.make_node('Transpose', [src], [src + '_nhwc'], perm=[0, 2, 3, 1]))
            src = src + '_nhwc'
        nodes.append(helper.make_node('Reshape', [src, init(np.array([-1, size], np.int64), out_names[j] + '_shape')], [out_names[j]]))
        graph_outs.append(helper.make_tensor_value_info(out_names[j], TensorProto.FLOAT, ['N', size]))
    graph = helper.make_graph(nodes, graph_name, [graph_in], graph_outs, inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid('', OPSET)], producer_name='tampertrace-convert')
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, onnx_path)
    return onnx_path


def tflite_run(path, x):
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_path=path)
    it.allocate_tensors()
    outs = []
    for item in x:
        it.set_tensor(it.get_input_details()[0]['index'], item[None])
        it.invoke()
        outs.append([it.get_tensor(d['index']).reshape(-1) for d in it.get_output_details()])
    return [np.stack([o[j] for o in outs]) for j in range(len(outs[0]))]


def crops(size, n_random):
    """Real-image crops (testdata/landmarks/*.rgb, not the evaluation faces) plus random noise."""
    xs = []
    ref = os.path.join(HERE, '..', '..', 'testdata', 'landmarks')
    for f in sorted(os.listdir(ref)) if os.path.isdir(ref) else []:
        if f.endswith(f'-{size}.rgb'):
            xs.append(np.frombuffer(open(os.path.join(ref, f), 'rb').read(), np.uint8).reshape(size, size, 3))
    rng = np.random.default_rng(18)
    xs += [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n_random)]
    # MediaPipe's face and iris landmark graphs feed [0, 1] floats (tensors_to ... range 0..1).
    return np.stack(xs).astype(np.float32) / 255.0, len(xs) - n_random


def sha256(path):
    return hashlib.sha256(open(path, 'rb').read()).hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--tflite-dir', required=True)
    args = ap.parse_args()
    report = {}
    jobs = [
        ('face_landmark/face_landmark.tflite', 'face_landmark_468.onnx', ['landmarks', 'face_flag'], 192),
        ('iris_landmark/iris_landmark.tflite', 'iris_landmark.onnx', ['eye_contours', 'iris'], 64),
    ]
    for src, dst, outs, size in jobs:
        src_path = os.path.join(args.tflite_dir, src)
        dst_path = os.path.join(HERE, dst)
        convert(src_path, dst_path, outs, os.path.splitext(dst)[0])
        x, n_real = crops(size, 3)
        want = tflite_run(src_path, x)
        sess = ort.InferenceSession(dst_path, providers=['CPUExecutionProvider'])
        got = sess.run(outs, {'input': x})  # one batched run: proves the dynamic batch
        diffs = {o: float(np.max(np.abs(g - w))) for o, g, w in zip(outs, got, want)}
        report[dst] = {'source': src, 'source_sha256': sha256(src_path), 'sha256': sha256(dst_path),
                       'bytes': os.path.getsize(dst_path), 'crops': int(x.shape[0]), 'real_crops': n_real,
                       'max_abs_diff_vs_tflite': diffs}
        print(dst, json.dumps(report[dst]))
        if n_real:
            # Reference outputs of the real crops (TFLite's), for the TypeScript test of the ONNX.
            refs = {o: w[:n_real].round(5).tolist() for o, w in zip(outs, want)}
            with open(os.path.join(HERE, '..', '..', 'testdata', 'landmarks', f'reference-{size}.json'), 'w') as f:
                json.dump(refs, f)
    with open(os.path.join(HERE, 'conversion.json'), 'w') as f:
        json.dump(report, f, indent=2)
        f.write('\n')


if __name__ == '__main__':
    main()
