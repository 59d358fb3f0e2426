// Keyboard shortcuts: Ctrl+S saves (also while typing in a field); Delete or Backspace
// removes the selection; Ctrl+Z undoes; Ctrl+Shift+Z and Ctrl+Y redo. Cmd works for Ctrl.

function typing(target) {
  return target instanceof HTMLElement && (target.isContentEditable
    || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
}

export function bindShortcuts({ save, remove, undo, redo }) {
  document.addEventListener("keydown", (event) => {
    const mod = event.ctrlKey || event.metaKey;
    const key = event.key.toLowerCase();
    if (mod && key === "s") {
      event.preventDefault();
      save();
      return;
    }
    if (typing(event.target) || document.querySelector("dialog[open]")) return;
    if ((key === "delete" || key === "backspace") && !mod) {
      event.preventDefault();
      remove();
    } else if (mod && ((key === "z" && event.shiftKey) || key === "y")) {
      event.preventDefault();
      redo();
    } else if (mod && key === "z") {
      event.preventDefault();
      undo();
    }
  });
}
