"""What a person does on the editor's canvas, as Playwright mouse gestures."""


def center(locator) -> tuple[float, float]:
    box = locator.bounding_box()
    assert box is not None, f"{locator} is not on screen"
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def drag(page, start: tuple[float, float], end: tuple[float, float]) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(start[0] + 5, start[1] + 5, steps=2)
    page.mouse.move(*end, steps=12)
    page.mouse.up()


def node(page, node_id: str):
    return page.locator(f'#canvas [data-cell-id="{node_id}"]')


def port(page, node_id: str, kind: str, name: str):
    """An input ("in") or output ("out") port's circle."""
    return node(page, node_id).locator(f'[port="{kind}:{name}"]')


def add_step(page, component: str, x: float, y: float) -> str:
    """Drag a component from the palette to (x, y) of the canvas; the new node's id."""
    canvas = page.locator("#canvas").bounding_box()
    before = set(page.evaluate("window.pipelineEditor.spec().nodes.map(n => n.id)"))
    item = page.locator(f'.palette-item[data-component="{component}"]')
    item.scroll_into_view_if_needed()  # the palette scrolls once it holds many components
    drag(page, center(item), (canvas["x"] + x, canvas["y"] + y))
    page.wait_for_function(
        "n => window.pipelineEditor.spec().nodes.length === n", arg=len(before) + 1)
    after = set(page.evaluate("window.pipelineEditor.spec().nodes.map(n => n.id)"))
    (added,) = after - before
    return added


def connect(page, source: str, output: str, target: str, input_: str) -> None:
    drag(page, center(port(page, source, "out", output)), center(port(page, target, "in", input_)))


def edges(page) -> list[dict]:
    return page.evaluate("window.pipelineEditor.spec().edges")
