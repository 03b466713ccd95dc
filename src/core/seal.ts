/**
 * Sealed flags: the manager derives each instance's flag (it alone holds the flag secret) and
 * seals it for the one worker that runs the instance; only that worker's private key opens it.
 * ECIES over X25519: an ephemeral key pair per seal, HKDF-SHA256 of the shared secret, then
 * AES-256-GCM with the instance, its placement epoch and the worker as associated data, so a
 * sealed flag copied onto another instance, epoch or worker does not open.
 */
import { createCipheriv, createHash, createDecipheriv, createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, randomBytes, type KeyObject } from 'node:crypto';

const INFO = Buffer.from('poseidon-flag-v1');
/** Public key PEM -> fingerprint (a fleet has a handful of keys; cleared past 1024). */
const fingerprints = new Map<string, string>();

/** Short fingerprint of a public key: sealed flags name the key they were sealed for, so a worker re-registered with a new key gets a new seal. */
export function keyFingerprint(publicKeyPem: string): string {
  // Asked for every instance on every resync, about a handful of worker keys: remembered.
  let print = fingerprints.get(publicKeyPem);
  if (print === undefined) {
    print = createHash('sha256').update(publicKeyPem.trim()).digest('hex').slice(0, 12);
    if (fingerprints.size >= 1024) fingerprints.clear();
    fingerprints.set(publicKeyPem, print);
  }
  return print;
}

/**
 * The value of `Instance.sealedFlag`: `<specHash>:<key fingerprint>:<sealed>`, so a version
 * change or a new worker key is seen without opening it.
 */
export function sealedFlagField(specHash: string, publicKeyPem: string, sealed: string): string {
  return `${specHash}:${keyFingerprint(publicKeyPem)}:${sealed}`;
}

/** Splits a `sealedFlag` field; undefined when malformed. */
export function parseSealedFlag(field: string | undefined): { specHash: string; key: string; sealed: string } | undefined {
  const m = /^([^:]+):([0-9a-f]{12}):(.+)$/.exec(field ?? '');
  return m ? { specHash: m[1] as string, key: m[2] as string, sealed: m[3] as string } : undefined;
}

/** A new X25519 key pair as PEM (public SPKI, private PKCS#8). */
export function newSealingKeys(): { publicKey: string; privateKey: string } {
  const { publicKey, privateKey } = generateKeyPairSync('x25519');
  return {
    publicKey: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}

/** What a sealed flag is bound to. */
export interface SealContext {
  instance: string;
  epoch: number;
  worker: string;
}

function aad(ctx: SealContext): Buffer {
  // JSON, not a separator: no instance/worker pair can be shifted into another with the same bytes.
  return Buffer.from(JSON.stringify(['poseidon-flag-v1', ctx.instance, ctx.epoch, ctx.worker]));
}

function key(shared: Buffer, eph: Buffer, recipient: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', shared, Buffer.concat([eph, recipient]), INFO, 32));
}

function raw(k: KeyObject): Buffer {
  // The last 32 bytes of an X25519 SPKI are the key itself.
  return k.export({ type: 'spki', format: 'der' }).subarray(-32);
}

/** Seals `text` for the holder of `publicKeyPem`: `v1.<eph>.<iv>.<ciphertext>.<tag>` (base64url). */
export function seal(publicKeyPem: string, text: string, ctx: SealContext): string {
  const recipient = createPublicKey(publicKeyPem);
  const eph = generateKeyPairSync('x25519');
  const shared = diffieHellman({ privateKey: eph.privateKey, publicKey: recipient });
  const ephRaw = raw(eph.publicKey);
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key(shared, ephRaw, raw(recipient)), iv).setAAD(aad(ctx));
  const ct = Buffer.concat([cipher.update(text, 'utf8'), cipher.final()]);
  return ['v1', ephRaw, iv, ct, cipher.getAuthTag()].map((p) => (typeof p === 'string' ? p : p.toString('base64url'))).join('.');
}

/**
 * One part of a sealed text: only canonical base64url of the expected length is accepted (Node's
 * decoder ignores stray characters, padding bits and '+'/'/' aliases, so one sealed flag would
 * otherwise have many spellings, and a short tag would weaken GCM).
 */
function part(text: string | undefined, bytes?: number): Buffer {
  const buf = Buffer.from(text ?? '', 'base64url');
  if (text === undefined || buf.toString('base64url') !== text || (bytes !== undefined && buf.length !== bytes)) throw new Error('not a sealed flag');
  return buf;
}

/** Opens a sealed flag; throws when it was not sealed for this key and context, or was altered. */
export function unseal(privateKeyPem: string, sealed: string, ctx: SealContext): string {
  const parts = sealed.split('.');
  if (parts.length !== 5 || parts[0] !== 'v1') throw new Error('not a sealed flag');
  const [ephRaw, iv, ct, tag] = [part(parts[1], 32), part(parts[2], 12), part(parts[3]), part(parts[4], 16)];
  const privateKey = createPrivateKey(privateKeyPem);
  const ephPublic = createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b656e032100', 'hex'), ephRaw]), format: 'der', type: 'spki' });
  const shared = diffieHellman({ privateKey, publicKey: ephPublic });
  const decipher = createDecipheriv('aes-256-gcm', key(shared, ephRaw, raw(createPublicKey(privateKey))), iv, { authTagLength: 16 }).setAAD(aad(ctx));
  decipher.setAuthTag(tag);
  return Buffer.concat([decipher.update(ct), decipher.final()]).toString('utf8');
}
