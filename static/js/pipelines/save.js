// Saving the draft. The editor knows the revision it loaded; the server refuses a save based
// on an older revision (409), so a second editor never silently overwrites the first. The
// state shows in the toolbar and in document.body.dataset.saved: saved, dirty, saving,
// conflict or error. Leaving with unsaved changes asks first.

import { get, patch } from "../api.js";

const LABELS = {
  saved: "All changes saved",
  dirty: "Unsaved changes",
  saving: "Saving…",
  conflict: "Not saved: someone else saved a newer draft",
  error: "Not saved",
};

export function createSaver({ url, revision, indicator, banner, currentSpec, beforeSave,
                              onSaved, onExport }) {
  let baseline = null; // JSON of the spec as the server has it
  let state = "saved";
  let saving = null;

  function show(next, detail = "") {
    state = next;
    document.body.dataset.saved = next;
    indicator.textContent = detail ? `${LABELS[next]}: ${detail}` : LABELS[next];
    indicator.className = `save-state save-${next}`;
  }

  function showBanner(text, actions) {
    banner.querySelector(".banner-text").textContent = text;
    const box = banner.querySelector(".banner-actions");
    box.replaceChildren();
    for (const [label, action] of actions) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = label;
      b.addEventListener("click", action);
      box.append(b);
    }
    banner.hidden = false;
  }

  async function save({ force = false } = {}) {
    if (saving) return saving;
    beforeSave();
    const { spec } = currentSpec();
    const json = JSON.stringify(spec);
    if (json === baseline && !force) {
      show("saved");
      return true;
    }
    if (state === "conflict" && !force) return false;
    show("saving");
    saving = (async () => {
      try {
        const reply = await patch(url, { spec, revision });
        revision = reply.revision;
        baseline = json;
        banner.hidden = true;
        show(JSON.stringify(currentSpec().spec) === baseline ? "saved" : "dirty");
        onSaved(reply);
        return true;
      } catch (exc) {
        if (exc.status === 409) {
          show("conflict");
          showBanner("Someone else saved this pipeline after you opened it, so your changes "
            + "were not saved. Reload to see their draft (export yours first to keep it), or "
            + "overwrite their draft with yours.", [
            ["Export my version", onExport],
            ["Reload", () => { baseline = JSON.stringify(currentSpec().spec); location.reload(); }],
            ["Overwrite with mine", overwrite],
          ]);
        } else {
          show("error", exc.message);
        }
        return false;
      } finally {
        saving = null;
      }
    })();
    return saving;
  }

  async function overwrite() {
    try {
      const latest = await get(url);
      revision = latest.revision;
    } catch (exc) {
      show("error", exc.message);
      return;
    }
    await save({ force: true });
  }

  window.addEventListener("beforeunload", (event) => {
    if (baseline !== null && JSON.stringify(currentSpec().spec) !== baseline) {
      event.preventDefault();
      event.returnValue = "";
    }
  });

  return {
    save,
    /** The spec now shown is what the server has (after load). */
    setBaseline() {
      baseline = JSON.stringify(currentSpec().spec);
      show("saved");
    },
    /** Something changed: compare with what the server has. */
    changed(specJson) {
      if (baseline === null || state === "saving" || state === "conflict") return;
      show(specJson === baseline ? "saved" : "dirty");
    },
    get revision() { return revision; },
    get dirty() { return baseline !== null && JSON.stringify(currentSpec().spec) !== baseline; },
  };
}
