"""The summary table the porting tool prints: layer, type, blob shapes, parameter count."""


def summary_rows(layers):
    """[(name, type, "20x1x5x5, 20", n_params)] for layers with .name, .type, .blobs."""
    rows = []
    for layer in layers:
        shapes = ", ".join("shared" if b is None else "x".join(str(d) for d in b.shape) or
                           "scalar" for b in layer.blobs)
        rows.append((layer.name, layer.type or "?", shapes or "-",
                     sum(int(b.size) for b in layer.blobs if b is not None)))
    return rows


def format_summary(layers, title=None):
    rows = summary_rows(layers)
    total = sum(r[3] for r in rows)
    head = ("layer", "type", "blob shapes", "params")
    w = [max([len(head[i])] + [len(str(r[i])) for r in rows]) for i in range(3)]
    wn = max(len(head[3]), len(f"{total:,}"))

    def line(r):
        count = r[3] if isinstance(r[3], str) else format(r[3], ",")
        return f"{r[0]:<{w[0]}}  {r[1]:<{w[1]}}  {r[2]:<{w[2]}}  {count:>{wn}}"
    out = [title] if title else []
    out += [line(head), "-" * (sum(w) + wn + 6)]
    out += [line(r) for r in rows]
    out += ["-" * (sum(w) + wn + 6), line(("total", "", f"{len(rows)} layers", total))]
    return "\n".join(out)
