"""Who is turned away at the door: the requests no replica can ever serve.

Both serving engines (``sim.serving.engine``, SimPy; ``sim.serving.lean``) reject with the
same rules and the same words, so this module imports neither SimPy nor the engines.
"""

from __future__ import annotations


def model_context(model) -> int | None:
    """The model's context window in tokens (trained positions), None when unbounded."""
    pos = getattr(model, "position", None)
    return None if pos is None or pos.kind == "none" else int(pos.max_positions)


def misfit(prompt: int, output: int, *, capacity: int, block_size: int, extra_tokens: int,
           limit: int | None, context: int | None) -> str:
    """Why a request of ``prompt`` + ``output`` tokens can never be served by a replica of
    ``capacity`` KV blocks ('' if it can): no KV cache at all, a prompt above the tokens one
    iteration may batch (``limit``), more blocks than the pool holds, or longer than the
    model's context window. Every engine rejects at the door with these words."""
    if capacity == 0:
        return ("the weights leave no HBM for a KV cache; raise --tp/--pp, use a larger "
                "GPU or --gpu-memory-utilization")
    need = -(-(prompt + output + extra_tokens) // block_size)
    if limit is not None and prompt > limit:
        return (f"its {prompt}-token prompt exceeds the {limit} tokens one iteration "
                "may batch (--max-batched-tokens); raise it or use --policy chunked")
    if need > capacity:
        return (f"needs {need} KV blocks ({prompt} prompt + {output} output tokens) "
                f"but a replica holds {capacity} blocks of {block_size} tokens; shorten the "
                "request, raise --tp/--pp or use a GPU with more memory")
    if context is not None and prompt + output > context:
        return (f"its {prompt} prompt + {output} output tokens exceed the model's "
                f"{context}-token context window; shorten the request or serve a "
                "model with a longer context")
    return ""
