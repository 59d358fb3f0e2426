// The Publish dialog: freeze the saved draft as a new version with a message, then point the
// endpoint at it (create the endpoint the first time, PATCH its default version after), and
// show how to call it with curl.

import { patch, post } from "../api.js";

/** How the endpoint API refers to a version (docs/api.md, Endpoints: default_version). */
export const versionRef = (version) => version.number;

function slug(text) {
  return text.toLowerCase().replace(/[^a-z0-9_-]+/g, "-").replace(/^-+|-+$/g, "") || "pipeline";
}

export function curlExample(origin, endpoint, parameters) {
  const body = {};
  for (const [name, def] of Object.entries(parameters || {})) {
    body[name] = def.default !== undefined ? def.default : `<${def.type}>`;
  }
  const json = JSON.stringify({ parameters: body }).replace(/'/g, "'\\''");
  return [
    `curl -X POST ${origin}/api/endpoints/${endpoint}/runs/ \\`,
    `  -H "Authorization: Token $PIPELINES_TOKEN" \\`,
    `  -H "Content-Type: application/json" \\`,
    `  -d '${json}'`,
  ].join("\n");
}

export function createPublishDialog(dialog, {
  pipeline, origin, urls, endpoints, ensureSaved, getParameters, onPublished,
}) {
  const form = dialog.querySelector("form");
  const fields = dialog.querySelector("[data-role=form]");
  const result = dialog.querySelector("[data-role=result]");
  const errorBox = dialog.querySelector("[data-role=error]");
  const note = dialog.querySelector("[data-role=endpoint-note]");
  const button = dialog.querySelector("[data-action=publish-now]");
  const close = dialog.querySelector("[data-role=close]");
  const nameInput = form.elements.endpoint;

  function describeEndpoint() {
    const existing = endpoints.find((e) => e.name === nameInput.value.trim());
    note.textContent = existing
      ? `Endpoint ${existing.name} runs version ${existing.default_version} now; `
        + "it will run the new version."
      : "A new endpoint with this name will run the new version.";
  }
  nameInput.addEventListener("input", describeEndpoint);

  async function publish() {
    if (!form.reportValidity()) return;
    errorBox.hidden = true;
    button.disabled = true;
    dialog.dataset.state = "publishing";
    const name = nameInput.value.trim();
    try {
      if (!(await ensureSaved())) throw new Error("Save the draft first; it could not be saved.");
      const version = await post(urls.versions, { message: form.elements.message.value.trim() });
      const existing = endpoints.find((e) => e.name === name);
      const endpoint = existing
        ? await patch(urls.endpoint(name), { default_version: versionRef(version) })
        : await post(urls.endpoints, { pipeline: pipeline.id, name,
                                       default_version: versionRef(version) });
      const summary = { name, default_version: version.number };
      if (existing) Object.assign(existing, summary);
      else endpoints.push(summary);
      onPublished(version, endpoint);
      showResult(version, name);
      dialog.dataset.state = "published";
    } catch (exc) {
      const lines = (exc.errors || []).map((e) => `${e.node || e.field || ""}: ${e.message}`);
      errorBox.textContent = [exc.message, ...lines].join("\n");
      errorBox.hidden = false;
      dialog.dataset.state = "failed";
    } finally {
      button.disabled = false;
    }
  }

  function showResult(version, name) {
    fields.hidden = true;
    button.hidden = true;
    close.textContent = "Close";
    result.hidden = false;
    result.innerHTML = `<p class="ok">Published version <strong data-role="version"></strong>.
      Endpoint <code data-role="endpoint"></code> now runs it.</p>
      <pre class="curl" data-testid="curl"></pre>
      <button type="button" data-action="copy">Copy curl command</button>
      <span class="muted" data-role="copied"></span>`;
    result.querySelector("[data-role=version]").textContent = `v${version.number}`;
    result.querySelector("[data-role=endpoint]").textContent = name;
    const curl = curlExample(origin, name, getParameters());
    result.querySelector("pre").textContent = curl;
    result.querySelector("[data-action=copy]").addEventListener("click", async () => {
      const copied = result.querySelector("[data-role=copied]");
      try {
        await navigator.clipboard.writeText(curl);
        copied.textContent = "Copied.";
      } catch {
        const range = document.createRange();
        range.selectNodeContents(result.querySelector("pre"));
        getSelection().removeAllRanges();
        getSelection().addRange(range);
        copied.textContent = "Selected; press Ctrl+C to copy.";
      }
    });
  }

  button.addEventListener("click", publish);

  return {
    open() {
      fields.hidden = false;
      button.hidden = false;
      result.hidden = true;
      errorBox.hidden = true;
      close.textContent = "Cancel";
      delete dialog.dataset.state;
      form.elements.message.value = "";
      nameInput.value = endpoints.length ? endpoints[0].name : slug(pipeline.name);
      describeEndpoint();
      dialog.showModal();
    },
  };
}
