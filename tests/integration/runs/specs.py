"""Small pipeline specs for engine tests."""

from textwrap import dedent


def script(node_id, code, *, target, inputs=(), outputs=(), **options):
    node = {
        "id": node_id,
        "component": "python-script@1",
        "compute": target,
        "params": {"code": dedent(code), **options.pop("params", {})},
        "ports": {"inputs": [{"name": n, "type": "any"} for n in inputs],
                  "outputs": [{"name": n, "type": "any"} for n in outputs]},
        **options,
    }
    return node


def edge(source, destination):
    return {"from": source, "to": destination}


def diamond(target, *, parameters=None, delay=0.0):
    """a -> (b, c) -> d: a writes a number, b doubles it, c adds `offset`, d sums both."""
    read = "int((context.input_path('{port}') / 'value.txt').read_text())"
    write = "(context.output_path('{port}') / 'value.txt').write_text(str({expr}))"
    return {
        "parameters": parameters or {"offset": {"type": "int", "default": 10}},
        "nodes": [
            script("a", f"""
                import time
                from runner import context
                time.sleep({delay})
                {write.format(port='out', expr=7)}
                print('a wrote 7')
                """, target=target, outputs=["out"]),
            script("b", f"""
                from runner import context
                v = {read.format(port='x')}
                {write.format(port='out', expr='v * 2')}
                context.log_metric('doubled', v * 2, step=1)
                """, target=target, inputs=["x"], outputs=["out"]),
            script("c", f"""
                from runner import context
                v = {read.format(port='x')}
                {write.format(port='out', expr="v + context.param('offset')")}
                """, target=target, inputs=["x"], outputs=["out"],
                   params={"offset": "${offset}"}),
            script("d", f"""
                from runner import context
                total = {read.format(port='left')} + {read.format(port='right')}
                {write.format(port='out', expr='total')}
                print('total', total)
                """, target=target, inputs=["left", "right"], outputs=["out"]),
        ],
        "edges": [edge("a.out", "b.x"), edge("a.out", "c.x"),
                  edge("b.out", "d.left"), edge("c.out", "d.right")],
    }
