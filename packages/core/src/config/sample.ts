/**
 * The sample configuration and the configuration reference, generated from the schemas so that
 * they cannot drift from what `parseConfig` accepts.
 *
 * Both work from the JSON Schema of the *input* side (`z.toJSONSchema(schema, { io: 'input' })`),
 * which carries each field's description, default, `examples` metadata and constraints.
 * Field order follows the schemas; networks are sorted by name, so the output is deterministic.
 */
import { stringify } from 'yaml';
import { z } from 'zod';
import { coreConfigSchema, type NetworkSchemas } from './schema.js';

/** The parts of a JSON Schema node that the renderers read. */
interface JsonNode {
  type?: string | string[];
  description?: string;
  default?: unknown;
  examples?: unknown[];
  enum?: unknown[];
  const?: unknown;
  format?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  properties?: Record<string, JsonNode>;
  required?: string[];
  additionalProperties?: JsonNode | boolean;
  items?: JsonNode;
  anyOf?: JsonNode[];
  oneOf?: JsonNode[];
  $ref?: string;
  $defs?: Record<string, JsonNode>;
}

/** One schema's JSON Schema, with a way to follow its local `$ref`s. */
interface Doc {
  root: JsonNode;
  deref(node: JsonNode): JsonNode;
}

const COMMENT_WIDTH = 88;

/**
 * Renders a commented YAML sample configuration: every key preceded by its description, defaults
 * filled in, required keys given an example value, optional keys without a default commented out,
 * and one section under `networks:` for each schema in `networkSchemas`.
 */
export function renderSampleConfig(networkSchemas: NetworkSchemas = {}): string {
  const core = jsonSchemaOf(coreConfigSchema);
  const sections: string[][] = [];
  for (const [key, node] of Object.entries(core.root.properties ?? {})) {
    const lines: string[] = [];
    if (key === 'networks') renderNetworks(lines, core.deref(node), networkSchemas);
    else renderField(lines, core, key, node, isRequired(core.root, key), 0);
    sections.push(lines);
  }
  return `${sections.map((lines) => lines.join('\n')).join('\n\n')}\n`;
}

/** Renders a Markdown table of every configuration key: key | type | default | description. */
export function renderConfigReference(networkSchemas: NetworkSchemas = {}): string {
  const rows: string[][] = [];
  const core = jsonSchemaOf(coreConfigSchema);
  collectRows(rows, core, core.root, [], true);
  for (const name of Object.keys(networkSchemas).sort()) {
    const network = jsonSchemaOf(networkSchemas[name] as z.ZodType);
    collectRows(rows, network, network.root, ['networks', name], true);
  }
  const table = [['Key', 'Type', 'Default', 'Description'], ['---', '---', '---', '---'], ...rows];
  return `${table.map((cells) => `| ${cells.join(' | ')} |`).join('\n')}\n`;
}

function jsonSchemaOf(schema: z.ZodType): Doc {
  const root = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as JsonNode;
  const deref = (node: JsonNode): JsonNode => {
    for (let seen = 0; node.$ref !== undefined && seen < 32; seen++) {
      const ref: string = node.$ref;
      const target = ref === '#' ? root : root.$defs?.[ref.replace(/^#\/\$defs\//, '')];
      if (target === undefined) return node;
      const { $ref: _ignored, ...rest } = node;
      node = { ...target, ...rest };
    }
    return node;
  };
  return { root, deref };
}

// ---- sample ----------------------------------------------------------------------------------

function renderNetworks(lines: string[], node: JsonNode, networkSchemas: NetworkSchemas): void {
  pushComments(lines, '', node, false);
  const names = Object.keys(networkSchemas).sort();
  if (names.length === 0) {
    lines.push('networks: {}');
    return;
  }
  lines.push('networks:');
  names.forEach((name, index) => {
    const network = jsonSchemaOf(networkSchemas[name] as z.ZodType);
    const root = network.deref(network.root);
    if (index > 0) lines.push('');
    renderField(lines, network, name, { description: `Settings of the "${name}" network.`, ...root }, true, 1);
  });
}

function renderField(lines: string[], doc: Doc, key: string, raw: JsonNode, required: boolean, depth: number): void {
  const node = doc.deref(raw);
  const pad = '  '.repeat(depth);
  pushComments(lines, pad, node, required);
  const body: string[] = [];
  const name = scalar(key);
  if (hasProperties(node)) {
    body.push(`${name}:`);
    for (const [child, childNode] of Object.entries(node.properties)) {
      renderField(body, doc, child, childNode, isRequired(node, child), 1);
    }
  } else if (isRecord(node)) {
    const example = node.examples?.[0] ?? (isEmpty(node.default) ? undefined : node.default);
    if (example !== undefined) {
      body.push(...keyValue(name, example));
    } else {
      const entry = doc.deref(node.additionalProperties);
      body.push(`${name}:`);
      if (hasProperties(entry)) renderField(body, doc, 'example', entry, true, 1);
      else body.push(...keyValue('example', placeholder(doc, entry)).map((line) => `  ${line}`));
    }
  } else {
    body.push(...keyValue(name, node.default !== undefined ? node.default : placeholder(doc, node)));
  }
  // An optional key without a default is absent unless the operator adds it: show it commented out.
  const commented = !required && node.default === undefined;
  lines.push(...body.map((line) => (commented ? `${pad}# ${line}` : `${pad}${line}`)));
}

function pushComments(lines: string[], pad: string, node: JsonNode, required: boolean): void {
  const notes: string[] = [];
  if (node.description !== undefined) notes.push(node.description);
  if (node.enum !== undefined && node.enum.length > 1) notes.push(`One of: ${node.enum.map(String).join(', ')}.`);
  if (required && node.default === undefined && !hasProperties(node)) notes.push('Required.');
  for (const note of notes) {
    for (const line of wrap(note, COMMENT_WIDTH - pad.length - 2)) lines.push(`${pad}# ${line}`);
  }
}

/** `key: value` for scalars and empty collections, a nested block otherwise. */
function keyValue(key: string, value: unknown): string[] {
  if (typeof value !== 'object' || value === null || isEmpty(value)) return [`${key}: ${scalar(value)}`];
  const block = stringify(value, { lineWidth: 0 }).trimEnd().split('\n');
  return [`${key}:`, ...block.map((line) => `  ${line}`)];
}

/** A scalar (or empty collection) as one line of YAML, quoted only where YAML needs it. */
function scalar(value: unknown): string {
  if (typeof value === 'string' && /[\r\n]/.test(value)) return JSON.stringify(value);
  return stringify(value, { lineWidth: 0 }).trimEnd();
}

/** A value that satisfies `node` as far as the JSON Schema says, for keys that need one. */
function placeholder(doc: Doc, node: JsonNode): unknown {
  if (node.examples !== undefined && node.examples.length > 0) return node.examples[0];
  if (node.default !== undefined) return node.default;
  if (node.const !== undefined) return node.const;
  if (node.enum !== undefined && node.enum.length > 0) return node.enum[0];
  const alternative = (node.anyOf ?? node.oneOf)?.[0];
  if (alternative !== undefined) return placeholder(doc, doc.deref(alternative));
  switch (primaryType(node)) {
    case 'string':
      return node.format === 'uri' ? 'https://example.org' : 'change-me';
    case 'integer':
    case 'number':
      return bound(node.minimum) ?? (bound(node.exclusiveMinimum) ?? -1) + 1;
    case 'boolean':
      return false;
    case 'array':
      return [];
    case 'object': {
      const entries = Object.entries(node.properties ?? {}).filter(([key]) => isRequired(node, key));
      return Object.fromEntries(entries.map(([key, child]) => [key, placeholder(doc, doc.deref(child))]));
    }
    default:
      return null;
  }
}

function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  for (const paragraph of text.split('\n')) {
    let line = '';
    for (const word of paragraph.split(/\s+/).filter((w) => w !== '')) {
      if (line !== '' && line.length + 1 + word.length > width) {
        lines.push(line);
        line = word;
      } else {
        line = line === '' ? word : `${line} ${word}`;
      }
    }
    lines.push(line);
  }
  return lines;
}

// ---- reference -------------------------------------------------------------------------------

function collectRows(rows: string[][], doc: Doc, raw: JsonNode, path: string[], required: boolean): void {
  const node = doc.deref(raw);
  if (hasProperties(node)) {
    for (const [key, child] of Object.entries(node.properties)) {
      // A key is only required if its section is: keys of an optional section are not.
      collectRows(rows, doc, child, [...path, key], required && isRequired(node, key));
    }
    return;
  }
  const defaultCell =
    node.default !== undefined ? code(scalarOrInline(node.default)) : required ? '**required**' : '—';
  rows.push([code(path.join('.')), cell(typeLabel(doc, node)), cell(defaultCell), cell(node.description ?? '')]);
  if (isRecord(node)) {
    const entry = doc.deref(node.additionalProperties);
    if (hasProperties(entry)) collectRows(rows, doc, entry, [...path, '<name>'], true);
  }
}

function typeLabel(doc: Doc, raw: JsonNode): string {
  const node = doc.deref(raw);
  if (node.enum !== undefined) return node.enum.map((value) => JSON.stringify(value)).join(' | ');
  if (node.const !== undefined) return JSON.stringify(node.const);
  const alternatives = node.anyOf ?? node.oneOf;
  if (alternatives !== undefined) return alternatives.map((alt) => typeLabel(doc, alt)).join(' | ');
  if (Array.isArray(node.type)) return node.type.join(' | ');
  switch (node.type) {
    case 'string':
      return node.format === 'uri' ? 'URL' : 'string';
    case 'integer':
    case 'number':
      return `${node.type}${range(node)}`;
    case 'array':
      return node.items === undefined ? 'list' : `list of ${typeLabel(doc, node.items)}`;
    case 'object':
      return isRecord(node) ? `map of ${typeLabel(doc, node.additionalProperties)}` : 'mapping';
    case undefined:
      return 'any';
    default:
      return node.type;
  }
}

function range(node: JsonNode): string {
  const min = bound(node.minimum);
  const max = bound(node.maximum);
  if (min !== undefined && max !== undefined) return ` (${min}–${max})`;
  const exclusiveMin = bound(node.exclusiveMinimum);
  const exclusiveMax = bound(node.exclusiveMaximum);
  const lower = min !== undefined ? `≥ ${min}` : exclusiveMin !== undefined ? `> ${exclusiveMin}` : undefined;
  const upper = max !== undefined ? `≤ ${max}` : exclusiveMax !== undefined ? `< ${exclusiveMax}` : undefined;
  const parts = [lower, upper].filter((part) => part !== undefined);
  return parts.length > 0 ? ` (${parts.join(', ')})` : '';
}

/** A bound worth showing: `z.int()` adds the safe-integer limits, which say nothing to a reader. */
function bound(value: number | undefined): number | undefined {
  return value !== undefined && Math.abs(value) < Number.MAX_SAFE_INTEGER ? value : undefined;
}

function scalarOrInline(value: unknown): string {
  return typeof value === 'object' && value !== null && !isEmpty(value) ? JSON.stringify(value) : scalar(value);
}

function code(text: string): string {
  return `\`${text}\``;
}

function cell(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').replace(/\|/g, '\\|');
}

// ---- JSON Schema helpers ---------------------------------------------------------------------

function hasProperties(node: JsonNode): node is JsonNode & { properties: Record<string, JsonNode> } {
  return node.properties !== undefined && Object.keys(node.properties).length > 0;
}

function isRecord(node: JsonNode): node is JsonNode & { additionalProperties: JsonNode } {
  return primaryType(node) === 'object' && !hasProperties(node) && typeof node.additionalProperties === 'object';
}

function isRequired(node: JsonNode, key: string): boolean {
  return node.required?.includes(key) ?? false;
}

function primaryType(node: JsonNode): string | undefined {
  return Array.isArray(node.type) ? node.type.find((type) => type !== 'null') : node.type;
}

function isEmpty(value: unknown): boolean {
  if (Array.isArray(value)) return value.length === 0;
  return typeof value === 'object' && value !== null && Object.keys(value).length === 0;
}
