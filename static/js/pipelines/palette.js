// The palette: components grouped by category and searchable. Drag one onto the canvas to add
// a step; a click (or Enter) adds it in the middle of the view.

// A drag starts once the pointer has moved this far, so a plain click still clicks.
const DRAG_AFTER_PX = 4;

export function createPalette(root, { components, onDragStart, onPick }) {
  function armDrag(component, down) {
    const move = (event) => {
      if (Math.hypot(event.clientX - down.clientX, event.clientY - down.clientY)
          < DRAG_AFTER_PX) return;
      stop();
      onDragStart(component, event);
    };
    const stop = () => {
      document.removeEventListener("mousemove", move);
      document.removeEventListener("mouseup", stop);
    };
    document.addEventListener("mousemove", move);
    document.addEventListener("mouseup", stop);
  }

  const search = root.querySelector("[data-role=search]");
  const list = root.querySelector("[data-role=groups]");
  const groups = new Map();
  for (const c of [...components].sort((a, b) => a.title.localeCompare(b.title))) {
    const category = c.category || "Other";
    if (!groups.has(category)) groups.set(category, []);
    groups.get(category).push(c);
  }
  for (const category of [...groups.keys()].sort()) {
    const section = document.createElement("section");
    section.className = "palette-group";
    section.innerHTML = `<h3></h3><ul></ul>`;
    section.querySelector("h3").textContent = category;
    const ul = section.querySelector("ul");
    for (const component of groups.get(category)) {
      const li = document.createElement("li");
      const item = document.createElement("button");
      item.type = "button";
      item.className = "palette-item";
      item.dataset.component = component.key;
      item.dataset.search = [component.title, component.key, component.category,
        component.description].join(" ").toLowerCase();
      item.title = component.description || component.title;
      item.innerHTML = `<span class="palette-title"></span><span class="palette-key"></span>`;
      item.querySelector(".palette-title").textContent = component.title;
      item.querySelector(".palette-key").textContent =
        component.key + (component.builtin ? "" : " · registered");
      item.addEventListener("mousedown", (event) => {
        if (event.button === 0) armDrag(component, event);
      });
      item.addEventListener("click", () => onPick(component));
      li.append(item);
      ul.append(li);
    }
    list.append(section);
  }
  const empty = document.createElement("p");
  empty.className = "muted palette-empty";
  empty.textContent = "No component matches.";
  empty.hidden = true;
  list.append(empty);

  search.addEventListener("input", () => {
    const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    let shown = 0;
    for (const section of list.querySelectorAll(".palette-group")) {
      let inGroup = 0;
      for (const item of section.querySelectorAll(".palette-item")) {
        const match = words.every((w) => item.dataset.search.includes(w));
        item.parentElement.hidden = !match;
        inGroup += match ? 1 : 0;
      }
      section.hidden = inGroup === 0;
      shown += inGroup;
    }
    empty.hidden = shown > 0;
  });
}
