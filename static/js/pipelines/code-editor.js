// A small code editor over a textarea: monospace, Tab and Shift+Tab indent and dedent,
// Enter keeps the indentation (one level more after a colon), Escape leaves the field so
// Tab can move focus again. Text goes in with insertText to keep the browser's own undo.

const INDENT = "    ";

function insert(area, text) {
  if (!document.execCommand("insertText", false, text)) {
    area.setRangeText(text, area.selectionStart, area.selectionEnd, "end");
    area.dispatchEvent(new Event("input", { bubbles: true }));
  }
}

function lineStart(value, index) {
  return value.lastIndexOf("\n", index - 1) + 1;
}

function shiftLines(area, dedent) {
  const { value, selectionStart, selectionEnd } = area;
  const start = lineStart(value, selectionStart);
  const end = selectionEnd > selectionStart && value[selectionEnd - 1] === "\n"
    ? selectionEnd - 1 : selectionEnd;
  const block = value.slice(start, end);
  const lines = block.split("\n").map((line) => {
    if (!dedent) return INDENT + line;
    const spaces = line.match(/^ {0,4}/)[0].length;
    return line.slice(line.startsWith("\t") ? 1 : spaces);
  });
  area.setSelectionRange(start, end);
  insert(area, lines.join("\n"));
  area.setSelectionRange(start, start + lines.join("\n").length);
}

export function codeEditor(area) {
  area.classList.add("code-editor");
  area.spellcheck = false;
  area.setAttribute("autocapitalize", "off");
  area.setAttribute("autocomplete", "off");
  area.wrap = "off";
  area.addEventListener("keydown", (event) => {
    if (event.key === "Tab" && !event.ctrlKey && !event.metaKey && !event.altKey) {
      event.preventDefault();
      const multiline = area.value.slice(area.selectionStart, area.selectionEnd).includes("\n");
      if (event.shiftKey || multiline) shiftLines(area, event.shiftKey);
      else insert(area, INDENT);
    } else if (event.key === "Enter" && !event.shiftKey && !event.ctrlKey && !event.metaKey) {
      event.preventDefault();
      const before = area.value.slice(lineStart(area.value, area.selectionStart),
        area.selectionStart);
      let indent = before.match(/^[ \t]*/)[0];
      if (/:\s*$/.test(before)) indent += INDENT;
      insert(area, "\n" + indent);
    } else if (event.key === "Escape") {
      area.blur();
    }
  });
  return area;
}
