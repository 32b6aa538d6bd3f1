/**
 * Checking a value against a schema, fast. valibot's `parse` copies every object it checks, field by field:
 * measured on a watch snapshot of 18,000 endpoints (bench/schema-snapshot.ts), 18 ms, as long as the
 * JSON.parse of the line itself, paid by every agent at every reconnect. The check compiled here walks the
 * same schema once, up front, into plain predicates and tests the value in place: ~3 ms for the same
 * snapshot. When it fails, valibot parses the value again to find the issue to report (sentence.ts), so
 * the fast path only has to be right about yes and no, and it is derived from the schema, never written by
 * hand. The value that passes is returned itself: fields a non-strict object does not declare stay on it
 * (valibot would drop them), which no reader sees through the derived types.
 *
 * Schemas that change their input (defaults, transforms) cannot be checked in place: those go to valibot.
 */
import * as v from 'valibot';
import { VxnetError } from '../errors.ts';
import { type Style, sentenceOf } from './sentence.ts';

type Predicate = (value: unknown) => boolean;

/** What the compiler reads of a valibot schema or action (their public, documented properties). */
interface Node {
  kind: string;
  type: string;
  entries?: Record<string, Node>;
  item?: Node;
  wrapped?: Node;
  options?: readonly unknown[];
  literal?: unknown;
  key?: unknown;
  value?: Node;
  pipe?: readonly Node[];
  default?: unknown;
  requirement?: unknown;
}

/** Thrown while compiling: this schema changes its input, so only valibot can give the output. */
class Unsupported extends Error {}

const compiled = new WeakMap<object, Predicate | null>();

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

function compileNode(node: Node): Predicate {
  if (node.pipe) {
    const [base, ...actions] = node.pipe;
    const checks = [compileNode(base!), ...actions.flatMap(compileAction)];
    if (checks.length === 1) return checks[0]!;
    return (value) => {
      for (const check of checks) if (!check(value)) return false;
      return true;
    };
  }
  if ('default' in node && node.default !== undefined) throw new Unsupported(`${node.type} with a default`);
  switch (node.type) {
    case 'string':
      return (value) => typeof value === 'string';
    case 'number':
      return (value) => typeof value === 'number' && !Number.isNaN(value);
    case 'boolean':
      return (value) => typeof value === 'boolean';
    case 'unknown':
      return () => true;
    case 'literal': {
      const literal = node.literal;
      return (value) => value === literal;
    }
    case 'picklist': {
      const options = node.options!;
      return (value) => options.includes(value);
    }
    case 'nullable': {
      const wrapped = compileNode(node.wrapped!);
      return (value) => value === null || wrapped(value);
    }
    case 'array': {
      const item = compileNode(node.item!);
      return (value) => {
        if (!Array.isArray(value)) return false;
        for (let i = 0; i < value.length; i++) if (!item(value[i])) return false;
        return true;
      };
    }
    case 'object':
    case 'strict_object':
      return compileObject(node.entries!, node.type === 'strict_object');
    case 'variant': {
      const key = node.key as string;
      const byTag = new Map<unknown, Predicate>();
      for (const option of node.options as Node[]) byTag.set(option.entries![key]!.literal, compileNode(option));
      return (value) => isObject(value) && (byTag.get(value[key])?.(value) ?? false);
    }
    default:
      throw new Unsupported(node.type);
  }
}

function compileObject(entries: Record<string, Node>, strict: boolean): Predicate {
  const fields = Object.entries(entries).map(([key, entry]) => {
    // exact_optional: absent is fine, present must match; valibot adds nothing for an absent key
    const optional = entry.type === 'exact_optional';
    if (optional && entry.default !== undefined) throw new Unsupported('exact_optional with a default');
    return { key, optional, check: compileNode(optional ? entry.wrapped! : entry) };
  });
  return (value) => {
    if (!isObject(value)) return false;
    for (const { key, optional, check } of fields) {
      const field = value[key];
      if (field === undefined ? !optional : !check(field)) return false;
    }
    if (strict) for (const key in value) if (!Object.hasOwn(entries, key)) return false;
    return true;
  };
}

function compileAction(action: Node): Predicate[] {
  if (action.kind === 'metadata') return [];
  if (action.kind === 'schema') return [compileNode(action)];
  if (action.kind !== 'validation') throw new Unsupported(`${action.type} action`);
  switch (action.type) {
    case 'safe_integer':
      return [(value) => Number.isSafeInteger(value)];
    case 'min_value': {
      const min = action.requirement as number;
      return [(value) => (value as number) >= min];
    }
    case 'max_value': {
      const max = action.requirement as number;
      return [(value) => (value as number) <= max];
    }
    case 'non_empty':
      return [(value) => (value as { length: number }).length > 0];
    // the diagnose message's lists: without it, every watch message (snapshots too) went through valibot
    case 'max_length': {
      const max = action.requirement as number;
      return [(value) => (value as { length: number }).length <= max];
    }
    default:
      // an action this compiler does not know: the whole schema goes to valibot
      throw new Unsupported(`${action.type} action`);
  }
}

function predicateOf(schema: v.GenericSchema): Predicate | null {
  let predicate = compiled.get(schema);
  if (predicate === undefined) {
    try {
      predicate = compileNode(schema as Node);
    } catch (err) {
      if (!(err instanceof Unsupported)) throw err;
      predicate = null;
    }
    compiled.set(schema, predicate);
  }
  return predicate;
}

export type Checked<T> = { ok: true; value: T } | { ok: false; sentence: string };

/**
 * `value` as the schema's output, or the one sentence that says what is wrong with it (sentence.ts), with
 * `what` naming the value in it.
 */
export function check<S extends v.GenericSchema>(schema: S, value: unknown, what: string, style: Style = 'api'): Checked<v.InferOutput<S>> {
  const predicate = predicateOf(schema);
  if (predicate?.(value)) return { ok: true, value: value as v.InferOutput<S> };
  const result = v.safeParse(schema, value);
  if (result.success) return { ok: true, value: result.output };
  return { ok: false, sentence: sentenceOf(schema, result.issues, what, style) };
}

/**
 * A request body as its schema's output, or a `bad_request` VxnetError whose sentence names the body by the
 * schema's title ("unknown field "x" in the network request").
 */
export function requireBody<S extends v.GenericSchema>(schema: S, body: unknown): v.InferOutput<S> {
  const result = check(schema, body, v.getTitle(schema) ?? 'request');
  if (!result.ok) throw new VxnetError('bad_request', result.sentence);
  return result.value;
}
