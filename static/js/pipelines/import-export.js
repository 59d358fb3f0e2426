// Import and export of the spec as a JSON file.

export function exportSpec(spec, name) {
  const blob = new Blob([JSON.stringify(spec, null, 2) + "\n"], { type: "application/json" });
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = `${name.replace(/[^A-Za-z0-9_.-]+/g, "-") || "pipeline"}.json`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

/** Read a spec from a chosen file; rejects with a message a person can act on. */
export async function readSpecFile(file) {
  let spec;
  try {
    spec = JSON.parse(await file.text());
  } catch (exc) {
    throw new Error(`${file.name} is not JSON: ${exc.message}`);
  }
  if (!spec || typeof spec !== "object" || Array.isArray(spec) || !Array.isArray(spec.nodes)) {
    throw new Error(`${file.name} is not a pipeline spec: it needs a "nodes" list.`);
  }
  return { parameters: spec.parameters || {}, nodes: spec.nodes, edges: spec.edges || [] };
}
