import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv } from 'ajv';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parse } from 'yaml';
import { oracle, ROOT } from './helpers/deps.ts';

test('docker-compose.yml validates against the Compose specification', () => {
  const schemaPath = oracle('compose-spec.json');
  if (!schemaPath) return;
  const validate = new Ajv({ validateSchema: false, allowUnionTypes: true }).compile(JSON.parse(readFileSync(schemaPath, 'utf8')));
  const doc = parse(readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8')) as { services: Record<string, Record<string, any>> };
  assert.ok(validate(doc), JSON.stringify(validate.errors, null, 2));
  assert.ok(doc.services.poseidon?.environment.POSEIDON_GATEWAY_CONTAINER === doc.services.traefik?.container_name, 'poseidon joins traefik to instance networks');
});

test.run();
