// The component catalog: what the palette offers and what each node's ports are.

export const PORT_TYPES = ["any", "file", "folder", "table", "model", "json", "text", "image"];

const STARTER_CODE = `from runner import context

# Read inputs with context.input_path("name"), write outputs to context.output_path("name"),
# read parameters with context.param("name"), log metrics with context.log_metric(key, value).
print("hello from", context.node())
`;

export class Catalog {
  constructor(components) {
    this.byKey = new Map(components.map((c) => [c.key, c]));
  }

  get(key) {
    return this.byKey.get(key) || null;
  }

  all() {
    return [...this.byKey.values()];
  }
}

/** The node's ports: its own for a component with dynamic ports, else its component's. */
export function portsOf(data, component) {
  if (component && !component.dynamic_ports) {
    return { inputs: component.inputs, outputs: component.outputs };
  }
  const own = data.ports || {};
  return { inputs: own.inputs || [], outputs: own.outputs || [] };
}

/** Params a new node starts with: schema defaults of required fields, starter code. */
export function initialParams(component) {
  const schema = component.params_schema || {};
  const properties = schema.properties || {};
  const required = new Set(schema.required || []);
  // A oneOf of required fields (code or source): the first alternative is the suggestion.
  const firstChoice = (schema.oneOf || [])[0];
  for (const name of (firstChoice && firstChoice.required) || []) required.add(name);
  const params = {};
  for (const name of required) {
    const prop = properties[name] || {};
    if (prop.default !== undefined) params[name] = prop.default;
    else if (prop.format === "code") params[name] = STARTER_CODE;
  }
  return params;
}

/** A node id for the component that no node in `taken` has: train, train_2, ... */
export function newNodeId(component, taken) {
  let base = component.name.replace(/[^A-Za-z0-9_-]/g, "_").replace(/^[^A-Za-z_]/, "n_");
  base = base.slice(0, 56) || "step";
  if (!taken.has(base)) return base;
  for (let i = 2; ; i += 1) {
    if (!taken.has(`${base}_${i}`)) return `${base}_${i}`;
  }
}

/** The workspace's default target; "local" (the spec's own default) if it has none. */
export function defaultTarget(computeTargets) {
  const chosen = computeTargets.find((t) => t.is_default);
  return chosen ? chosen.name : "local";
}

/** The spec node a palette drop creates (without id and position). */
export function newNodeData(component, computeTargets) {
  const data = {
    component: component.key,
    params: initialParams(component),
    compute: defaultTarget(computeTargets),
    allow_reuse: true,
    retries: 0,
    timeout_s: 3600,
  };
  if (component.dynamic_ports) data.ports = { inputs: [], outputs: [] };
  return data;
}
