"""Lower Einsum (no gradient builder in onnxruntime-training 1.19) into ReduceSum/Transpose/Reshape/Unsqueeze/
MatMul/Squeeze, which it differentiates.

For two operands A, B and output O every letter is one of
    batch        in A, B and O             -> a MatMul batch dim (MatMul broadcasts size-1 batch dims)
    left-free    in A and O only           -> the MatMul row dim (the last one in O) or an extra batch dim
    right-free   in B and O only           -> the MatMul column dim (the last one in O) or an extra batch dim
    contracted   in A and B, not O         -> the MatMul inner dim (several are merged by one Reshape)
    summed-out   in one operand only, not O -> ReduceSum on that operand first
so O = Transpose(Squeeze(MatMul(A', B'))) with
    A' = [batch, extra left-free, 1 per extra right-free, row, contracted]
    B' = [batch, 1 per extra left-free, extra right-free, contracted, column]
where a missing row/column/contracted dim is a size-1 dim. Everything works on symbolic dims: the only Reshape
merges trailing dims with 0/-1. One operand: ReduceSum the letters O lacks, then Transpose.
"""

from __future__ import annotations

import string

import onnx

from gradsign_rs.frontend._graph import Emitter, attribute, known_dims, refusal, rewrite_op

ELLIPSIS = "..."
SUPPORTED = (
    "gradsign-rs lowers one- and two-operand equations whose letters appear at most once per operand "
    '("..." allowed where the operand\'s rank is known); rewrite the node with MatMul/Transpose or export without it'
)


class Unsupported(Exception):
    """Why an equation cannot be lowered (turned into a GradSignError naming the node)."""


def parse(equation: str, ranks: list[int | None]) -> tuple[list[str], str]:
    """The operand terms and the output term with every "..." expanded into fresh letters (right-aligned, as
    broadcasting aligns them) and an implicit output made explicit (ellipsis dims, then the letters seen once,
    sorted)."""
    text = equation.replace(" ", "")
    lhs, arrow, rhs = text.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ranks):
        raise Unsupported(f"{len(terms)} operand terms for {len(ranks)} inputs")
    for term in [*terms, rhs]:
        body = term.replace(ELLIPSIS, "", 1)
        if not all(c in string.ascii_letters for c in body):
            raise Unsupported(f'term {term!r} has characters other than letters and one "..."')
        if len(set(body)) != len(body):
            raise Unsupported(f"a letter repeats within term {term!r} (a diagonal or trace)")
    widths = []  # how many dims "..." stands for in each term (0 without one)
    for term, rank in zip(terms, ranks):
        if ELLIPSIS in term and rank is None:
            raise Unsupported(f'the rank of the operand of term {term!r} is unknown, so "..." cannot be expanded')
        widths.append((rank or 0) - (len(term) - len(ELLIPSIS)) if ELLIPSIS in term else 0)  # rank known: checked
        if widths[-1] < 0:
            raise Unsupported(f"term {term!r} has more letters than its operand's rank {rank}")
    width = max(widths, default=0)
    letters = "".join([c for c in string.ascii_letters if c not in text][:width])
    terms = [term.replace(ELLIPSIS, letters[width - w :]) for term, w in zip(terms, widths)]
    if arrow:
        output = rhs.replace(ELLIPSIS, letters)
    else:
        counts = {c: sum(term.count(c) for term in terms) for c in "".join(terms)}
        output = letters + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in letters))
    missing = set(output) - set("".join(terms))
    if missing:
        raise Unsupported(f"output letters {''.join(sorted(missing))!r} appear in no operand")
    return terms, output


def _permute(emit: Emitter, x: str, have: str, want: str, output: str | None = None) -> str:
    """Transpose x from letter order `have` to `want` (no node when equal, unless `output` must be written)."""
    if have == want:
        return emit.op("Identity", [x], output=output) if output else x
    return emit.op("Transpose", [x], "transposed", output=output, perm=[have.index(c) for c in want])


def _sum_out(emit: Emitter, x: str, term: str, keep: set[str]) -> tuple[str, str]:
    """ReduceSum over the letters of `term` not in `keep`; returns the tensor and its remaining term."""
    axes = [i for i, c in enumerate(term) if c not in keep]
    if not axes:
        return x, term
    return emit.reduce("ReduceSum", x, axes, keepdims=False, what="summed"), "".join(c for c in term if c in keep)


def _lower_one(emit: Emitter, x: str, term: str, output: str, out_name: str) -> None:
    x, term = _sum_out(emit, x, term, set(output))
    _permute(emit, x, term, output, output=out_name)


def _lower_two(emit: Emitter, a: str, b: str, terms: list[str], output: str, out_name: str) -> None:
    ta, tb = terms
    a, ta = _sum_out(emit, a, ta, set(tb) | set(output))
    b, tb = _sum_out(emit, b, tb, set(ta) | set(output))
    batch = [c for c in output if c in ta and c in tb]
    left = [c for c in output if c in ta and c not in tb]
    right = [c for c in output if c in tb and c not in ta]
    contracted = [c for c in ta if c in tb and c not in output]
    row, col = left[-1:], right[-1:]  # the MatMul row/column: the last free letter of each side in output order
    extra_left, extra_right = left[:-1], right[:-1]
    prefix = len(batch) + len(extra_left) + len(extra_right)

    # A' = [batch, extra_left, (1s for extra_right), row, contracted]
    a = _permute(emit, a, ta, "".join(batch + extra_left + row + contracted))
    a = _merge_or_pad_trailing(emit, a, len(batch) + len(extra_left) + len(row), len(contracted))
    if not row:
        a = emit.unsqueeze(a, [len(batch) + len(extra_left)], "row_padded")
    if extra_right and (batch or extra_left):  # leading size-1 dims are implicit in MatMul broadcasting
        a = emit.unsqueeze(a, range(len(batch) + len(extra_left), prefix), "broadcast")

    # B' = [batch, (1s for extra_left), extra_right, contracted, column]
    if len(contracted) > 1:
        # Merge the contracted dims at the end, then swap them with the column: one Reshape on symbolic dims.
        b = _permute(emit, b, tb, "".join(batch + extra_right + col + contracted))
        b = _merge_or_pad_trailing(emit, b, len(batch) + len(extra_right) + len(col), len(contracted))
        if col:
            rank = len(batch) + len(extra_right) + 2
            b = emit.op("Transpose", [b], "contracted_first", perm=[*range(rank - 2), rank - 1, rank - 2])
    else:
        b = _permute(emit, b, tb, "".join(batch + extra_right + contracted + col))
        if not contracted:
            b = emit.unsqueeze(b, [len(batch) + len(extra_right)], "inner_padded")
    if not col:
        b = emit.unsqueeze(b, [len(batch) + len(extra_right) + 1], "column_padded")
    if extra_left and batch:
        b = emit.unsqueeze(b, range(len(batch), len(batch) + len(extra_left)), "broadcast")

    # MatMul -> [batch, extra_left, extra_right, row or 1, column or 1] -> squeeze the 1s -> output order.
    have = "".join(batch + extra_left + extra_right + row + col)
    squeezed = [prefix + i for i, present in enumerate([row, col]) if not present]
    last = have == output and not squeezed
    product = emit.op("MatMul", [a, b], "product", output=out_name if last else None)
    if last:
        return
    if squeezed:
        product = emit.squeeze(product, squeezed, "product_squeezed", output=out_name if have == output else None)
        if have == output:
            return
    _permute(emit, product, have, output, output=out_name)


def _merge_or_pad_trailing(emit: Emitter, x: str, keep: int, count: int) -> str:
    """x with its last `count` dims merged into one (after `keep` dims), or a size-1 dim appended when count=0."""
    if count == 1:
        return x
    if count == 0:
        return emit.unsqueeze(x, [keep], "inner_padded")
    return emit.op("Reshape", [x, emit.ints([0] * keep + [-1], "merged_shape")], "merged")


def lower_einsum(model: onnx.ModelProto) -> onnx.ModelProto:
    """Einsum with one or two operands, no letter repeated within an operand, "..." where ranks are known."""
    dims = known_dims(model)

    def lower(emit: Emitter, node: onnx.NodeProto) -> None:
        equation = str(attribute(node, "equation", ""))
        try:
            if len(node.input) not in (1, 2):
                raise Unsupported(f"{len(node.input)} operands")
            terms, output = parse(equation, [len(dims[x]) if x in dims else None for x in node.input])
        except Unsupported as why:
            raise refusal(node, f"equation {equation!r} is not supported ({why})", SUPPORTED) from None
        if len(terms) == 1:
            _lower_one(emit, node.input[0], terms[0], output, node.output[0])
        else:
            _lower_two(emit, node.input[0], node.input[1], terms, output, node.output[0])

    return rewrite_op(model, "Einsum", lower)
