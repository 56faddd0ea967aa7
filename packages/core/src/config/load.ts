/**
 * Loading and validating the configuration file.
 *
 * Every problem in the file is collected (core sections and network sections alike) and reported
 * together in one {@link ConfigError}, each as `dotted.path: message`, so a bridge operator can
 * fix the whole file in one go instead of one error per restart.
 */
import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { coreConfigSchema, NETWORK_NAME, type NetworkSchemas, type TrestleConfig } from './schema.js';

/** The configuration cannot be used. `problems` holds one line per problem; the message lists them all. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';

  constructor(
    readonly problems: string[],
    /** The file the problems were found in, when there is one. */
    readonly source?: string,
  ) {
    const count = problems.length === 1 ? 'Configuration problem' : `${problems.length} configuration problems`;
    super(`${count}${source === undefined ? '' : ` in ${source}`}:\n${problems.map((p) => `  ${p}`).join('\n')}`);
  }
}

/**
 * Validates a parsed configuration file (for example the result of a YAML parse).
 *
 * Core sections are validated by `coreConfigSchema`; each `networks.<name>` section by
 * `networkSchemas[name]`, and the parsed section (defaults applied) replaces the raw one. A network
 * section without a schema is an error unless it names the module that implements it
 * (`module: "…"`), in which case it is returned unchanged for the caller to validate. A top-level
 * section left empty in YAML (`metrics:` with nothing under it) counts as absent.
 *
 * @throws ConfigError listing every problem found.
 */
export function parseConfig(raw: unknown, networkSchemas: NetworkSchemas = {}): TrestleConfig {
  const result = validate(raw, networkSchemas);
  if ('problems' in result) throw new ConfigError(result.problems);
  return result.config;
}

/**
 * Reads, parses and validates the YAML configuration file at `path`.
 *
 * @throws ConfigError when the file is missing or unreadable, is not valid YAML, or is not a valid
 *   configuration; the message says which, with line numbers for YAML syntax errors.
 */
export function loadConfig(path: string, networkSchemas: NetworkSchemas = {}): TrestleConfig {
  const raw = readYaml(path);
  const result = validate(raw, networkSchemas);
  if ('problems' in result) throw new ConfigError(result.problems, path);
  return result.config;
}

type Validation = { config: TrestleConfig } | { problems: string[] };

function validate(raw: unknown, networkSchemas: NetworkSchemas): Validation {
  const input = isMapping(raw) ? withoutEmptySections(raw) : raw;
  const problems: string[] = [];
  const core = coreConfigSchema.safeParse(input, { error: humanMessage });
  if (!core.success) problems.push(...formatIssues(core.error.issues));
  const networks = parseNetworks(isMapping(input) ? input['networks'] : undefined, networkSchemas, problems);
  if (!core.success || problems.length > 0) return { problems };
  return { config: { ...core.data, networks } };
}

function parseNetworks(
  raw: unknown,
  schemas: NetworkSchemas,
  problems: string[],
): Record<string, Record<string, unknown>> {
  const parsed: Record<string, Record<string, unknown>> = {};
  // Anything other than a mapping of mappings has already been reported by the core schema.
  if (!isMapping(raw)) return parsed;
  for (const [name, section] of Object.entries(raw)) {
    // A section that is not a mapping, or a name the core schema refused, has been reported already.
    if (!isMapping(section) || !NETWORK_NAME.test(name)) continue;
    const schema = Object.hasOwn(schemas, name) ? schemas[name] : undefined;
    if (schema !== undefined) {
      const result = schema.safeParse(section, { error: humanMessage });
      // A network's schema describes its section, a mapping; its output is that section parsed.
      if (result.success) parsed[name] = result.data as Record<string, unknown>;
      else problems.push(...formatIssues(result.error.issues, ['networks', name]));
    } else if (typeof section['module'] === 'string' || section['enabled'] === false) {
      // a module the caller loads itself, or a switched-off section: nothing here to check it with
      parsed[name] = section;
    } else {
      const known = Object.keys(schemas).sort().join(', ') || 'none';
      problems.push(`${formatPath(['networks', name])}: unknown network (known: ${known})`);
    }
  }
  return parsed;
}

function readYaml(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError([readFailure(err)], path);
  }
  const doc = parseDocument(text);
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((error) => {
        const at = error.linePos?.[0];
        const where = at === undefined ? '' : `line ${at.line}, column ${at.col}: `;
        const message =
          error.code === 'MULTIPLE_DOCS'
            ? 'the file holds more than one YAML document (---); keep the configuration in one'
            : (error.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:$/, '');
        return `${where}YAML syntax error: ${message}`;
      }),
      path,
    );
  }
  let raw: unknown;
  try {
    raw = doc.toJS();
  } catch (err) {
    throw new ConfigError([`YAML error: ${err instanceof Error ? err.message : String(err)}`], path);
  }
  if (raw === null || raw === undefined) {
    throw new ConfigError(['the file is empty; it needs at least a homeserver section'], path);
  }
  if (!isMapping(raw)) {
    const problem = `the top level must be a mapping of sections (homeserver:, appservice:, …), not ${describeValue(raw)}`;
    throw new ConfigError([problem], path);
  }
  return raw;
}

function readFailure(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT':
      return 'file not found (config/trestle.sample.yaml is a commented example to start from)';
    case 'EISDIR':
      return 'is a directory, not a file';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied reading the file';
    default:
      return `cannot read the file: ${err instanceof Error ? err.message : String(err)}`;
  }
}

/** Turns zod issues into `dotted.path: message` lines, one per unknown key. */
function formatIssues(issues: readonly z.core.$ZodIssue[], prefix: PropertyKey[] = []): string[] {
  return issues.flatMap((issue) => {
    const path = [...prefix, ...issue.path];
    switch (issue.code) {
      case 'unrecognized_keys':
        return issue.keys.map((key) => `${formatPath([...path, key])}: unknown key`);
      case 'invalid_key':
        return [`${formatPath(path)}: ${issue.issues.map((inner) => inner.message).join('; ')}`];
      default:
        return [`${formatPath(path)}: ${issue.message}`];
    }
  });
}

function formatPath(path: readonly PropertyKey[]): string {
  return path.length === 0 ? '(top level)' : path.map((part) => String(part)).join('.');
}

/**
 * Human messages for zod's built-in checks. Messages a schema sets itself (`{ error: … }`,
 * refinements) take precedence over these, so network schemas can still word their own.
 */
const humanMessage: z.core.$ZodErrorMap = (issue) => {
  switch (issue.code) {
    case 'invalid_type':
      if (issue.input === undefined || issue.expected === 'nonoptional') return 'is required';
      // z.int() reports a non-number as "expected number"; say what the field really wants.
      if (issue.expected === 'number' && isIntegerSchema(issue.inst)) return 'must be an integer';
      return `must be ${typePhrase(issue.expected)}`;
    case 'invalid_value':
      return issue.values.length === 1
        ? `must be ${formatValue(issue.values[0])}`
        : `must be one of: ${issue.values.map(formatValue).join(', ')}`;
    case 'too_small':
      return sizeMessage(issue.origin, issue.minimum, issue.inclusive ?? true, issue.exact ?? false, 'at least');
    case 'too_big':
      return sizeMessage(issue.origin, issue.maximum, issue.inclusive ?? true, issue.exact ?? false, 'at most');
    case 'invalid_format':
      return formatMessage(issue.format, issue.pattern);
    case 'not_multiple_of':
      return `must be a multiple of ${issue.divisor}`;
    case 'invalid_union':
      return unionMessage(issue);
    case 'custom':
      return 'is not valid';
    default:
      return undefined;
  }
};

function typePhrase(expected: string): string {
  const phrases: Record<string, string> = {
    string: 'a string',
    number: 'a number',
    int: 'an integer',
    bigint: 'an integer',
    boolean: 'true or false',
    object: 'a mapping',
    record: 'a mapping',
    map: 'a mapping',
    array: 'a list',
    tuple: 'a list',
    set: 'a list',
    date: 'a date',
    null: 'null',
  };
  return phrases[expected] ?? `a ${expected}`;
}

function isIntegerSchema(inst: z.core.$ZodType | z.core.$ZodCheck | undefined): boolean {
  const format = (inst?._zod.def as { format?: unknown } | undefined)?.format;
  return format === 'safeint' || format === 'int32' || format === 'uint32';
}

function sizeMessage(
  origin: string,
  bound: number | bigint,
  inclusive: boolean,
  exact: boolean,
  side: 'at least' | 'at most',
): string | undefined {
  const limit = Number(bound);
  const relation = exact ? 'exactly' : inclusive ? side : side === 'at least' ? 'greater than' : 'less than';
  switch (origin) {
    case 'number':
    case 'int':
    case 'bigint':
      return `must be ${relation} ${limit}`;
    case 'string':
      if (side === 'at least' && limit === 1 && !exact) return 'must not be empty';
      return `must be ${relation} ${limit} character${limit === 1 ? '' : 's'} long`;
    case 'array':
    case 'set':
      if (side === 'at least' && limit === 1 && !exact) return 'must not be empty';
      return `must have ${relation} ${limit} item${limit === 1 ? '' : 's'}`;
    default:
      return undefined;
  }
}

function formatMessage(format: string, pattern: string | undefined): string {
  switch (format) {
    case 'url':
      return 'must be a URL';
    case 'email':
      return 'must be an email address';
    case 'regex':
      return pattern === undefined ? 'has the wrong format' : `must match ${pattern}`;
    default:
      return `must be a valid ${format}`;
  }
}

function unionMessage(issue: z.core.$ZodRawIssue<z.core.$ZodIssueInvalidUnion>): string {
  if (issue.input === undefined) return 'is required';
  const options: readonly unknown[] = Array.isArray(issue.options) ? issue.options : [];
  if (options.length > 0) return `must be one of: ${options.map(formatValue).join(', ')}`;
  if (issue.inclusive === false) return 'matches more than one of the allowed forms';
  // When every alternative failed only on its type (string | number, …), list the alternatives.
  const shallow = issue.errors.every(
    (branch) => branch.length === 1 && branch[0]?.path.length === 0 && branch[0].message.startsWith('must be '),
  );
  if (!shallow || issue.errors.length === 0) return 'does not match any of the allowed forms';
  const alternatives = issue.errors.map((branch) => (branch[0]?.message ?? '').replace(/^must be (one of: )?/, ''));
  return `must be ${[...new Set(alternatives)].join(' or ')}`;
}

function formatValue(value: unknown): string {
  return typeof value === 'string' ? value : String(value);
}

function describeValue(value: unknown): string {
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'string') return 'a single string';
  return `a single ${typeof value} value`;
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function withoutEmptySections(raw: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(raw).filter(([, value]) => value !== null));
}
