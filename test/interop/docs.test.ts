/** docs/interop.md shows the mapping table and config fields the code uses, not a drifting copy. */
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { hfFixedFields, hfMappedFields } from '../../reformer/interop/hf-config.ts';
import { hfMapping } from '../../reformer/interop/hf-mapping.ts';

const doc = () => readFile(join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'docs', 'interop.md'), 'utf8');

describe('docs/interop.md', () => {
  it('its mapping table is hfMapping, row for row', async () => {
    const text = await doc();
    const table = text.slice(text.indexOf('<!-- mapping-table:start -->'), text.indexOf('<!-- mapping-table:end -->'));
    const rows = table.split('\n').filter((l) => l.startsWith('| `'));
    const cells = rows.map((l) => l.split('|').slice(1, -1).map((c) => c.trim()));
    const expected = hfMapping.map((r) => [`\`${r.ours}\``, r.hf.map((n) => `\`${n}\``).join(', '), r.layout, r.kind ?? '']);
    expect(cells).toEqual(expected);
  });

  it('names every mapped and fixed ReformerConfig field', async () => {
    const text = await doc();
    for (const f of [...hfMappedFields, ...Object.keys(hfFixedFields)]) expect(text, f).toContain(`\`${f}\``);
  });
});
