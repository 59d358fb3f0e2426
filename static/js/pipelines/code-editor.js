// Inline scripts are edited with CodeMirror 5 (static/vendor/codemirror-5.65.20): Python
// highlighting, line numbers, bracket matching and indentation that knows Python's colons.
// The textarea stays the form's field: each change is copied back to it and announced with
// the events the form listens for, so the editor is only a view over it.

const INDENT_UNIT = 4;

function indentOrInsert(cm) {
  if (cm.somethingSelected()) cm.indentSelection("add");
  else cm.replaceSelection(" ".repeat(INDENT_UNIT), "end");
}

/** Turn a textarea that is in the document into a Python editor; returns the editor. */
export function codeEditor(area, { readOnly = false } = {}) {
  const cm = window.CodeMirror.fromTextArea(area, {
    mode: "python",
    lineNumbers: true,
    indentUnit: INDENT_UNIT,
    tabSize: INDENT_UNIT,
    indentWithTabs: false,
    matchBrackets: true,
    readOnly,
    viewportMargin: Infinity, // the whole script is laid out, so the panel scrolls it
    extraKeys: {
      Tab: indentOrInsert,
      "Shift-Tab": "indentLess",
      Esc: (editor) => editor.getInputField().blur(), // so Tab can move focus again
    },
  });
  const announce = (type) => {
    cm.save();
    area.dispatchEvent(new Event(type, { bubbles: true }));
  };
  cm.on("change", () => announce("input"));
  cm.on("blur", () => announce("change"));
  cm.getWrapperElement().dataset.codeFor = area.dataset.param;
  // Drawn while its panel may still be laying out: measure again once it is on screen.
  requestAnimationFrame(() => cm.refresh());
  return cm;
}
