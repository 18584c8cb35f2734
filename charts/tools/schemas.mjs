// Prepares JSON schemas for kubeconform (charts/tools/install.sh):
//   localize DIR          kubernetes-validate's per-kind schemas refer to their shared definitions by
//                         absolute URL (https://kubernetes.io/api/_definitions.json): drop the $ids so
//                         each $ref resolves to the _definitions.json file beside it.
//   crd OUT CRD.yaml...   a CRD's openAPIV3Schema per served version as <kind>-<group prefix>-<version>.json,
//                         strict like the built-in ones: unknown fields are errors except where the CRD
//                         says x-kubernetes-preserve-unknown-fields.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';

const [mode, dir, ...files] = process.argv.slice(2);

if (mode === 'localize') {
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.json'))) {
    const p = path.join(dir, f);
    const s = JSON.parse(readFileSync(p, 'utf8'));
    delete s.$id;
    const out = JSON.stringify(s).replaceAll('"/api/_definitions.json#', '"_definitions.json#');
    writeFileSync(p, out);
  }
} else if (mode === 'crd') {
  for (const file of files) {
    for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) {
      const crd = doc.toJS();
      if (crd?.kind !== 'CustomResourceDefinition') continue;
      const { group, names } = crd.spec;
      for (const v of crd.spec.versions.filter((x) => x.served)) {
        const schema = strict(structuredClone(v.schema.openAPIV3Schema));
        schema.properties ??= {};
        schema.properties.apiVersion = { type: 'string', enum: [`${group}/${v.name}`] };
        schema.properties.kind = { type: 'string', enum: [names.kind] };
        schema.properties.metadata = { type: 'object' };
        const name = `${names.kind.toLowerCase()}-${group.split('.')[0]}-${v.name}.json`;
        writeFileSync(path.join(dir, name), JSON.stringify({ $schema: 'http://json-schema.org/draft-07/schema#', ...schema }));
      }
    }
  }
} else {
  console.error('usage: schemas.mjs localize DIR | crd OUT CRD.yaml...');
  process.exit(2);
}

function strict(s) {
  if (!s || typeof s !== 'object') return s;
  if (Array.isArray(s)) return s.map(strict);
  for (const [k, v] of Object.entries(s)) {
    if (k === 'properties') for (const p of Object.keys(v)) v[p] = strict(v[p]);
    else if (typeof v === 'object' && k !== 'enum' && k !== 'default' && k !== 'example') s[k] = strict(v);
  }
  if (s.properties && s.additionalProperties === undefined && !s['x-kubernetes-preserve-unknown-fields']) s.additionalProperties = false;
  // OpenAPI's nullable is not JSON Schema; int-or-string fields accept both.
  if (s.nullable && typeof s.type === 'string') s.type = [s.type, 'null'];
  if (s['x-kubernetes-int-or-string']) { delete s.type; s.anyOf = [{ type: 'integer' }, { type: 'string' }]; }
  return s;
}
