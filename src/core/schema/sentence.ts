/**
 * The one translator from valibot's issues to vxnet's error sentences (docs/api.md, "Errors"): one sentence
 * that names the field, says what it must be and, for the API, what it was instead —
 * `field "vni" must be an integer, not string "x".`, `field "name" is required in the network request.`,
 * `unknown field "subnet" in the network request (known fields: name, vni, ...).`
 *
 * Of several issues, the one reported is the one vxnet has always reported first: per object, a value that
 * is not an object at all, then an unknown field (a typo such as "nmae" explains the missing "name" that
 * follows from it), then the fields in the order the schema declares them.
 *
 * Two wordings: `api` for the manager's HTTP API and everything read from it; `plugin` for Docker's
 * libnetwork calls, whose sentences start with the call's name and, as Go's own messages, leave out the value.
 */
import type * as v from 'valibot';
import { quote } from '../errors.ts';

export type Style = 'api' | 'plugin';

type Issue = v.BaseIssue<unknown>;
type PathItem = { type: string; origin: string; input: unknown; key: unknown };

/** The parts of a schema this module reads to word a sentence (public properties of valibot's objects). */
interface Node {
  kind: string;
  type: string;
  message?: unknown;
  entries?: Record<string, Node>;
  item?: Node;
  wrapped?: Node;
  value?: Node;
  key?: unknown;
  options?: readonly unknown[];
  literal?: unknown;
  pipe?: readonly Node[];
}

export function sentenceOf(schema: v.GenericSchema, issues: readonly Issue[], what: string, style: Style): string {
  const issue = select(issues, 0);
  const path = (issue.path ?? []) as readonly PathItem[];
  const last = path.at(-1);
  const api = style === 'api';
  if (last?.origin === 'key' && Array.isArray(last.input)) {
    // valibot takes an array for an object and complains about its keys: it is the array that is wrong
    return wrongType(path.slice(0, -1), 'must be a JSON object', last.input, what, style);
  }
  if (last?.origin === 'key' && issue.expected === 'never') {
    const name = quote(formatPath(path));
    if (!api) return `${what}: unknown field ${name}.`;
    const container = schemaAt(schema, path.slice(0, -1));
    const known = Object.keys(objectEntries(container) ?? {}).join(', ');
    return `unknown field ${name} in the ${what} (known fields: ${known}).`;
  }
  if (last?.origin === 'key') {
    const name = quote(formatPath(path));
    return api ? `field ${name} is required in the ${what}.` : `${what}: field ${name} is required.`;
  }
  const node = schemaAt(schema, path);
  if (issue.kind === 'validation') {
    const action = failingSchema(node, issue.type);
    if (typeof action?.message === 'string') return field(path, action.message, what, style);
    if (issue.type === 'safe_integer' || issue.type === 'integer') return wrongType(path, 'must be an integer', issue.input, what, style);
    return field(path, `is not valid (${issue.message})`, what, style);
  }
  const failing = failingSchema(node, issue.type);
  if (typeof failing?.message === 'string') return field(path, failing.message, what, style);
  return wrongType(path, expectation(issue, node), issue.input, what, style);
}

/** vxnet's order: per object, a wrong container, then an unknown field, then the fields in schema order. */
function select(issues: readonly Issue[], depth: number): Issue {
  const here = (issue: Issue): PathItem | undefined => {
    const path = issue.path as readonly PathItem[] | undefined;
    return path?.length === depth + 1 ? path[depth] : undefined;
  };
  const notObject = issues.find((i) => here(i)?.origin === 'key' && Array.isArray(here(i)!.input));
  if (notObject) return notObject;
  const unknown = issues.find((i) => here(i)?.origin === 'key' && i.expected === 'never');
  if (unknown) return unknown;
  const first = issues[0]!;
  const key = (first.path as readonly PathItem[] | undefined)?.[depth]?.key;
  if (key === undefined || here(first)) return first;
  return select(
    issues.filter((i) => (i.path as readonly PathItem[] | undefined)?.[depth]?.key === key),
    depth + 1,
  );
}

function field(path: readonly PathItem[], predicate: string, what: string, style: Style): string {
  const name = quote(formatPath(path));
  if (style === 'plugin') return path.length === 0 ? `${what} ${predicate}.` : `${what}: field ${name} ${predicate}.`;
  return path.length === 0 ? `the ${what} body ${predicate}.` : `field ${name} ${predicate}.`;
}

function wrongType(path: readonly PathItem[], predicate: string, input: unknown, what: string, style: Style): string {
  return field(path, style === 'api' ? `${predicate}, not ${describe(input)}` : predicate, what, style);
}

/** A value someone sent, as a sentence names it: `string "x"`, `number 1.5`, `null`, `an array`. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `${typeof value} ${quote(value)}`;
}

/** `subnets[0].cidr` */
function formatPath(path: readonly PathItem[]): string {
  let text = '';
  for (const item of path) {
    if (item.type === 'array') text += `[${String(item.key)}]`;
    else text += text === '' ? String(item.key) : `.${String(item.key)}`;
  }
  return text;
}

function expectation(issue: Issue, node: Node | undefined): string {
  switch (issue.type) {
    case 'string':
      return 'must be a string';
    case 'number':
      return hasAction(node, 'safe_integer') || hasAction(node, 'integer') ? 'must be an integer' : 'must be a number';
    case 'boolean':
      return 'must be true or false';
    case 'array': {
      // the fields of what the caller writes (a strict object), not of every resource a manager answers with
      const item = withProperty(failingSchema(node, 'array')?.item, 'entries');
      return item?.type === 'strict_object' ? `must be an array of {${Object.keys(item.entries!).join(', ')}}` : 'must be an array';
    }
    case 'picklist':
      return `must be ${alternatives(failingSchema(node, 'picklist')?.options ?? [])}`;
    case 'literal':
      return `must be ${JSON.stringify(failingSchema(node, 'literal')?.literal)}`;
    case 'variant':
      return `must be ${issue.expected ?? 'one of the known kinds'}`;
    default:
      return 'must be a JSON object';
  }
}

/** `"pending", "ready" or "error"` */
function alternatives(options: readonly unknown[]): string {
  const quoted = options.map((o) => JSON.stringify(o));
  return quoted.length <= 1 ? (quoted[0] ?? 'nothing') : `${quoted.slice(0, -1).join(', ')} or ${quoted.at(-1)}`;
}

// ---- reading a schema along an issue's path ----

function unwrap(node: Node | undefined): Node | undefined {
  while (node?.wrapped) node = node.wrapped;
  return node;
}

/** The schema of the node itself or of its pipe that has `property`: v.pipe(custom, record) has its record second. */
function withProperty(node: Node | undefined, property: 'entries' | 'item' | 'value' | 'options'): Node | undefined {
  node = unwrap(node);
  if (!node || node[property] !== undefined) return node;
  return node.pipe?.map(unwrap).find((n) => n?.[property] !== undefined);
}

function objectEntries(node: Node | undefined): Record<string, Node> | undefined {
  return withProperty(node, 'entries')?.entries;
}

function schemaAt(schema: v.GenericSchema, path: readonly PathItem[]): Node | undefined {
  let node: Node | undefined = schema as Node;
  for (const item of path) {
    if (item.type === 'array') {
      node = withProperty(node, 'item')?.item;
    } else if (unwrap(node)?.type === 'variant') {
      const variant = unwrap(node)!;
      const key = variant.key as string;
      const tag = (item.input as Record<string, unknown>)[key];
      const option = (variant.options as Node[]).find((o) => o.entries?.[key]?.literal === tag);
      node = option?.entries?.[String(item.key)];
    } else {
      const entries = objectEntries(node);
      node = entries ? entries[String(item.key)] : withProperty(node, 'value')?.value;
    }
    if (!node) return undefined;
  }
  return node;
}

/** The schema or action of type `type` at this place: the node, what it wraps, or an item of its (nested) pipe. */
function failingSchema(node: Node | undefined, type: string): Node | undefined {
  for (let n = node; n; n = n.wrapped) {
    if (n.type === type) return n;
    for (const item of n.pipe ?? []) {
      const found = item.type === type ? item : item.pipe ? failingSchema(item, type) : undefined;
      if (found) return found;
    }
  }
  return undefined;
}

function hasAction(node: Node | undefined, type: string): boolean {
  return failingSchema(node, type) !== undefined;
}
