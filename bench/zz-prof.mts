import { GitSource } from '../src/source/git-source.ts';
import { loadSnapshot } from '../src/catalog/load-snapshot.ts';
import { Catalog } from '../src/catalog/catalog.ts';
import { gitFixture, challengeYaml, TEST_GIT_ENV } from '../spec/source/git-fixture.ts';
import { mkdtempSync } from 'node:fs';
const fx = gitFixture();
for (let i = 0; i < 200; i++) {
  const id = `chal-${i}`;
  if (i % 3 === 0) { fx.write(`c/${id}/challenge.yaml`, `id: ${id}\nname: C\nbuild: .\nexpose: [{ name: web, port: 8080 }]\n`); fx.write(`c/${id}/Dockerfile`, 'FROM busybox\n'); fx.write(`c/${id}/app/index.html`, 'x'.repeat(2000)); }
  else fx.write(`c/${id}/challenge.yaml`, challengeYaml(id, { env: '{ A: "1" }' }));
}
fx.push();
const src = new GitSource({ url: fx.remote, branch: 'main', path: 'c', workdir: mkdtempSync('/tmp/pp-'), env: TEST_GIT_ENV });
const cat = new Catalog();
let prev: string | undefined;
for (let k = 0; k < 6; k++) {
  fx.write(`c/chal-${k*7+1}/challenge.yaml`, challengeYaml(`chal-${k*7+1}`, { name: `x${k}` })); fx.push();
  const t0 = performance.now();
  const snap = await src.fetch(prev ? { since: prev } : {});
  const t1 = performance.now();
  const l = await loadSnapshot(snap);
  const t2 = performance.now();
  cat.apply(l, Date.now());
  const t3 = performance.now();
  await src.retain([snap.revision]);
  const t4 = performance.now();
  prev = snap.revision;
  console.log(`fetch+checkout ${(t1-t0).toFixed(0)} load ${(t2-t1).toFixed(0)} apply ${(t3-t2).toFixed(0)} retain ${(t4-t3).toFixed(0)}`);
}
fx.dispose();
