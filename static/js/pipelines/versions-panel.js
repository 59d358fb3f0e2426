// The Versions tab: published versions (each opens read-only, with "restore as draft") and
// the pipeline's endpoints with the version each runs.

export function createVersionsPanel(list, endpointList, { versions, endpoints }) {
  function render() {
    list.replaceChildren();
    if (!versions.length) {
      const p = document.createElement("p");
      p.className = "muted";
      p.textContent = "Nothing published yet. Publish freezes the draft as version 1.";
      list.append(p);
    }
    for (const v of versions) {
      const li = document.createElement("li");
      li.dataset.version = v.number;
      li.innerHTML = `<a></a> <span class="muted"></span><p></p>`;
      const a = li.querySelector("a");
      a.href = v.url;
      a.textContent = `v${v.number}`;
      li.querySelector("span").textContent = [v.created_by,
        v.created_at ? new Date(v.created_at).toLocaleString() : ""].filter(Boolean).join(", ");
      li.querySelector("p").textContent = v.message || "";
      list.append(li);
    }
    endpointList.replaceChildren();
    for (const e of endpoints) {
      const li = document.createElement("li");
      li.dataset.endpoint = e.name;
      li.innerHTML = `<code></code> runs <span></span>`;
      li.querySelector("code").textContent = e.name;
      li.querySelector("span").textContent = `v${e.default_version}`;
      endpointList.append(li);
    }
    if (!endpoints.length) {
      const li = document.createElement("li");
      li.className = "muted";
      li.textContent = "No endpoint yet.";
      endpointList.append(li);
    }
  }
  render();
  return {
    added(version) {
      versions.unshift(version);
      render();
    },
    render,
  };
}
