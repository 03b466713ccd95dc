/** Password redaction of Redis URLs (pure). */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { redactor, redactUrl } from '../../src/store/redis.ts';

const urls: Array<[string, string, string[]]> = [
  ['redis://127.0.0.1:6379', 'redis://127.0.0.1:6379', []],
  ['redis://:s3cret@127.0.0.1:1', 'redis://:***@127.0.0.1:1', ['s3cret']],
  ['rediss://user:pa%40ss@h:6380/2', 'rediss://user:***@h:6380/2', ['pa%40ss', 'pa@ss']],
  ['redis://:p@ss@h:1/0', 'redis://:***@h:1/0', ['p@ss']],
  ['redis://user@h:1', 'redis://user@h:1', []],
];

for (const [url, redacted, secrets] of urls) {
  test(`redactUrl ${redacted}`, () => {
    assert.is(redactUrl(url), redacted);
    const text = redactor(url)(`connect to ${url} failed; auth ${secrets.join(' ')} refused`);
    for (const secret of secrets) assert.not.ok(text.includes(secret), text);
    assert.ok(text.includes(redacted), text);
  });
}

test.run();
