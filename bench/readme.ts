/**
 * Puts the tables of a benchmark run into README.md, between `<!-- NAME:start -->` and `<!-- NAME:end -->`,
 * so that the README shows exactly what one run measured (`npm run bench -- --update-readme`). Text outside
 * the markers belongs to people and is never touched.
 */
import { readFile, writeFile } from 'node:fs/promises';

/** Replaces what is between the two markers of `name`; throws when they are missing or out of order. */
export function replaceMarkedSection(text: string, name: string, body: string): string {
  const start = `<!-- ${name}:start -->`;
  const end = `<!-- ${name}:end -->`;
  const from = text.indexOf(start);
  const to = text.indexOf(end);
  if (from < 0 || to < from) throw new Error(`README.md has no ${start} … ${end} section`);
  return `${text.slice(0, from + start.length)}\n${body.trim()}\n${text.slice(to)}`;
}

/** README headings sit one level below the report's: "### Attach …" becomes "#### Attach …". */
export const demoteHeadings = (lines: readonly string[]): string[] => lines.map((line) => (/^#{1,5} /.test(line) ? `#${line}` : line));

export async function updateReadme(path: string, sections: ReadonlyMap<string, readonly string[]>): Promise<void> {
  let text = await readFile(path, 'utf8');
  for (const [name, lines] of sections) text = replaceMarkedSection(text, name, lines.join('\n'));
  await writeFile(path, text);
}
