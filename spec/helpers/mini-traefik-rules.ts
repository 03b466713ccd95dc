/**
 * The rule language of Traefik v3 (v3.1, the version docker-compose.yml pins), for the test
 * stand-in (mini-traefik.ts). Traefik parses a rule as a Go expression (vulcand/predicate over
 * go/parser): matcher calls whose arguments are Go string literals (`raw` or "interpreted"),
 * combined with `!`, `&&` (binds tighter) and `||`, and parentheses. A matcher name is accepted
 * as written, in lower case, in upper case, or capitalised (`Host`, `host`, `HOST`, but not
 * `hOST`; `HostRegexp`, `hostregexp`, `HOSTREGEXP`, `Hostregexp`). `!` is pushed down to the
 * leaves by De Morgan, as Traefik does. Anything else throws, as Traefik refuses the router.
 *
 * HTTP matchers (pkg/muxer/http/matcher.go): Host, HostRegexp, Header, HeaderRegexp, Path,
 * PathPrefix, PathRegexp, Method, Query, QueryRegexp, ClientIP. TCP matchers
 * (pkg/muxer/tcp/matcher.go): HostSNI, HostSNIRegexp, ClientIP, ALPN. Regular expressions are Go
 * RE2 syntax, translated to JavaScript (see {@link goRegExp}); matching is unanchored, as Go's
 * MatchString. Default priority: the rule's length in bytes (HTTP and TCP), except that a TCP
 * rule that is exactly `HostSNI(\`*\`)` gets -1.
 */
import { BlockList, isIP } from 'node:net';

/** The tree Traefik builds (rules.Tree): and/or nodes, leaves carry `not` after De Morgan. */
export type RuleTree =
  | { op: 'and' | 'or'; left: RuleTree; right: RuleTree }
  | { op: 'leaf'; matcher: string; args: string[]; not: boolean };

/** What an HTTP rule looks at (Go's *http.Request, as the muxer sees it). */
export interface HttpMatchInput {
  /** `req.Host`: the Host header, or the authority of an absolute-form request target; may carry a port. */
  host: string;
  /** The decoded URL path (`req.URL.Path`). */
  path: string;
  /** The raw query string without `?`. */
  query: string;
  method: string;
  /** Request headers by lower-case name, every value kept (repeated header lines stay separate). */
  headers: Record<string, string[]>;
  /** The client's IP (remote address of the connection). */
  clientIp: string;
}

/** What a TCP rule looks at (tcpmuxer.ConnData). */
export interface TcpMatchInput {
  /** SNI server name (lower-cased by Traefik); empty for non-TLS connections or no SNI. */
  serverName: string;
  clientIp: string;
  alpn: string[];
}

export type Matcher<T> = (input: T) => boolean;

class RuleError extends Error {
  constructor(rule: string, message: string) {
    super(`invalid rule ${JSON.stringify(rule)}: ${message}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Parsing (a Go expression, the subset predicate accepts)

type Token =
  | { t: 'ident'; v: string; at: number }
  | { t: 'str'; v: string; at: number }
  | { t: 'op'; v: '(' | ')' | ',' | '&&' | '||' | '!'; at: number }
  | { t: 'other'; v: string; at: number }
  | { t: 'end'; at: number };

const GO_ESCAPES: Record<string, string> = { a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\\': '\\', '"': '"' };

/** A Go interpreted string literal body (between the quotes) to its value. */
function unquoteGo(rule: string, body: string): string {
  let out = '';
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c !== '\\') {
      out += c;
      continue;
    }
    const e = body[++i];
    if (e === undefined) throw new RuleError(rule, 'unterminated escape');
    if (e in GO_ESCAPES) out += GO_ESCAPES[e];
    else if (e === 'x' || e === 'u' || e === 'U') {
      const n = e === 'x' ? 2 : e === 'u' ? 4 : 8;
      const hex = body.slice(i + 1, i + 1 + n);
      if (!new RegExp(`^[0-9a-fA-F]{${n}}$`).test(hex)) throw new RuleError(rule, `bad \\${e} escape`);
      out += e === 'x' ? Buffer.from([parseInt(hex, 16)]).toString('latin1') : String.fromCodePoint(parseInt(hex, 16));
      i += n;
    } else if (/[0-7]/.test(e)) {
      const oct = body.slice(i, i + 3);
      if (!/^[0-7]{3}$/.test(oct)) throw new RuleError(rule, 'bad octal escape');
      out += String.fromCharCode(parseInt(oct, 8));
      i += 2;
    } else throw new RuleError(rule, `unknown escape sequence \\${e}`);
  }
  return out;
}

function tokenize(rule: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < rule.length) {
    const c = rule[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const at = i;
    if (c === '`') {
      const end = rule.indexOf('`', i + 1);
      if (end === -1) throw new RuleError(rule, 'raw string literal not terminated');
      // Go drops carriage returns from raw strings.
      out.push({ t: 'str', v: rule.slice(i + 1, end).replace(/\r/g, ''), at });
      i = end + 1;
    } else if (c === '"') {
      let j = i + 1;
      while (j < rule.length && rule[j] !== '"') {
        if (rule[j] === '\n') throw new RuleError(rule, 'newline in string');
        j += rule[j] === '\\' ? 2 : 1;
      }
      if (j >= rule.length) throw new RuleError(rule, 'string literal not terminated');
      out.push({ t: 'str', v: unquoteGo(rule, rule.slice(i + 1, j)), at });
      i = j + 1;
    } else if (rule.startsWith('&&', i) || rule.startsWith('||', i)) {
      out.push({ t: 'op', v: rule.slice(i, i + 2) as '&&' | '||', at });
      i += 2;
    } else if (c === '(' || c === ')' || c === ',' || c === '!') {
      if (c === '!' && rule[i + 1] === '=') {
        out.push({ t: 'other', v: '!=', at });
        i += 2;
        continue;
      }
      out.push({ t: 'op', v: c, at });
      i++;
    } else if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(rule.slice(i))!;
      out.push({ t: 'ident', v: m[0], at });
      i += m[0].length;
    } else {
      const m = /^(\d+|.)/.exec(rule.slice(i))!;
      out.push({ t: 'other', v: m[0], at });
      i += m[0].length;
    }
  }
  out.push({ t: 'end', at: rule.length });
  return out;
}

type Ast =
  | { k: 'and' | 'or'; l: Ast; r: Ast }
  | { k: 'not'; e: Ast }
  | { k: 'call'; name: string; args: string[] };

/** Parses `rule` into Traefik's tree (syntax only: matcher names are not checked here). */
export function parseRule(rule: string): RuleTree {
  const toks = tokenize(rule);
  let p = 0;
  const peek = () => toks[p]!;
  const isOp = (t: Token, v: string) => t.t === 'op' && t.v === v;
  const describe = (t: Token) => (t.t === 'end' ? 'end of rule' : `${JSON.stringify(t.v)} at ${t.at}`);
  const expect = (v: string) => {
    const t = toks[p++]!;
    if (t.t !== 'op' || t.v !== v) throw new RuleError(rule, `expected ${v}, found ${describe(t)}`);
  };
  const or = (): Ast => {
    let l = and();
    while (isOp(peek(), '||')) {
      p++;
      l = { k: 'or', l, r: and() };
    }
    return l;
  };
  const and = (): Ast => {
    let l = unary();
    while (isOp(peek(), '&&')) {
      p++;
      l = { k: 'and', l, r: unary() };
    }
    return l;
  };
  const unary = (): Ast => {
    const t = peek();
    if (t.t === 'op' && t.v === '!') {
      p++;
      return { k: 'not', e: unary() };
    }
    if (t.t === 'op' && t.v === '(') {
      p++;
      const e = or();
      expect(')');
      return e;
    }
    if (t.t !== 'ident') throw new RuleError(rule, `expected a matcher, found ${describe(t)}`);
    p++;
    const open = peek();
    if (open.t !== 'op' || open.v !== '(') throw new RuleError(rule, `${t.v} is not a matcher call (found ${describe(open)})`);
    p++;
    const args: string[] = [];
    while (!isOp(peek(), ')')) {
      const a = toks[p++]!;
      if (a.t !== 'str') throw new RuleError(rule, `arguments of ${t.v} must be string literals, found ${describe(a)}`);
      args.push(a.v);
      const sep = peek();
      if (sep.t === 'op' && sep.v === ',') p++;
      else if (!(sep.t === 'op' && sep.v === ')')) throw new RuleError(rule, `expected , or ) after an argument of ${t.v}, found ${describe(sep)}`);
    }
    p++;
    return { k: 'call', name: t.v, args };
  };
  if (peek().t === 'end') throw new RuleError(rule, 'empty rule');
  const ast = or();
  if (peek().t !== 'end') throw new RuleError(rule, `unexpected ${describe(peek())}`);
  const build = (a: Ast): RuleTree => {
    if (a.k === 'call') return { op: 'leaf', matcher: a.name, args: a.args, not: false };
    if (a.k === 'not') return invert(build(a.e));
    return { op: a.k, left: build(a.l), right: build(a.r) };
  };
  return build(ast);
}

/** rules.invert: De Morgan down to the leaves. */
function invert(t: RuleTree): RuleTree {
  if (t.op === 'leaf') return { ...t, not: !t.not };
  return { op: t.op === 'and' ? 'or' : 'and', left: invert(t.left), right: invert(t.right) };
}

/** The names Traefik's parser accepts for `canonical`: as is, lower, upper, and Title(lower). */
function spellings(canonical: string): string[] {
  const lower = canonical.toLowerCase();
  return [canonical, lower, canonical.toUpperCase(), lower[0]!.toUpperCase() + lower.slice(1)];
}

// ---------------------------------------------------------------------------------------------
// Go regular expressions

const POSIX: Record<string, string> = {
  alnum: '0-9A-Za-z', alpha: 'A-Za-z', ascii: '\\x00-\\x7F', blank: '\\t ', cntrl: '\\x00-\\x1F\\x7F', digit: '0-9',
  graph: '!-~', lower: 'a-z', print: ' -~', punct: '!-\\/:-@\\[-`{-~', space: '\\t\\n\\v\\f\\r ', upper: 'A-Z', word: '0-9A-Za-z_', xdigit: '0-9A-Fa-f',
};

/**
 * Compiles a Go (RE2) regular expression as JavaScript. Translated: inline flag groups `(?i)`,
 * `(?s)`, `(?m)` (applied to the whole expression: JavaScript has no scoped flags; Traefik's own
 * patterns put them first), `(?P<name>`, `\A`, `\z`, POSIX classes `[[:alpha:]]`. Refused as RE2
 * refuses them: look-arounds and back-references. Throws on anything JavaScript cannot compile.
 */
export function goRegExp(src: string): RegExp {
  let flags = '';
  let out = '';
  for (let i = 0; i < src.length; i++) {
    const c = src[i]!;
    if (c === '\\') {
      const n = src[i + 1];
      if (n === undefined) throw new Error(`regexp ${JSON.stringify(src)}: trailing backslash`);
      if (/[1-9]/.test(n)) throw new Error(`regexp ${JSON.stringify(src)}: back-references are not RE2`);
      if (n === 'A') out += '^';
      else if (n === 'z') out += '(?![\\s\\S])';
      else if (n === 'Q') {
        const end = src.indexOf('\\E', i + 2);
        const lit = src.slice(i + 2, end === -1 ? undefined : end);
        out += lit.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
        i = end === -1 ? src.length : end + 1;
        continue;
      } else out += c + n;
      i++;
      continue;
    }
    if (c === '[') {
      // Copy a bracket expression, translating POSIX classes.
      let j = i + 1;
      let body = '';
      if (src[j] === '^') body += src[j++];
      if (src[j] === ']') {
        body += '\\]';
        j++;
      }
      while (j < src.length && src[j] !== ']') {
        const posix = /^\[:(\^?)([a-z]+):\]/.exec(src.slice(j));
        if (posix) {
          const cls = POSIX[posix[2]!];
          if (!cls || posix[1]) throw new Error(`regexp ${JSON.stringify(src)}: unsupported class ${posix[0]}`);
          body += cls;
          j += posix[0].length;
        } else if (src[j] === '\\') {
          body += src.slice(j, j + 2);
          j += 2;
        } else if (src[j] === '[') {
          body += '\\[';
          j++;
        } else body += src[j++];
      }
      if (j >= src.length) throw new Error(`regexp ${JSON.stringify(src)}: missing closing ]`);
      out += `[${body}]`;
      i = j;
      continue;
    }
    if (c === '(' && src[i + 1] === '?') {
      const rest = src.slice(i);
      const flagGroup = /^\(\?([imsU]+)\)/.exec(rest);
      if (flagGroup) {
        if (flagGroup[1]!.includes('U')) throw new Error(`regexp ${JSON.stringify(src)}: (?U) is not supported by the stand-in`);
        for (const f of flagGroup[1]!) if (!flags.includes(f)) flags += f;
        i += flagGroup[0].length - 1;
        continue;
      }
      const scoped = /^\(\?([ims]+):/.exec(rest);
      if (scoped) {
        for (const f of scoped[1]!) if (!flags.includes(f)) flags += f;
        out += '(?:';
        i += scoped[0].length - 1;
        continue;
      }
      if (rest.startsWith('(?P<')) {
        out += '(?<';
        i += 3;
        continue;
      }
      if (/^\(\?(=|!|<=|<!)/.test(rest)) throw new Error(`regexp ${JSON.stringify(src)}: look-arounds are not RE2`);
    }
    out += c;
  }
  try {
    return new RegExp(out, flags);
  } catch (err) {
    throw new Error(`regexp ${JSON.stringify(src)}: ${(err as Error).message}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Matchers

type Builder<T> = (rule: string, args: string[]) => Matcher<T>;

function arity<T>(name: string, counts: number[], fn: Builder<T>): Builder<T> {
  return (rule, args) => {
    if (!counts.includes(args.length)) throw new RuleError(rule, `${name}: unexpected number of parameters; got ${args.length}, expected one of [${counts.join(' ')}]`);
    return fn(rule, args);
  };
}

const isAscii = (s: string) => /^[\x00-\x7f]*$/.test(s);

/** Traefik's request decorator: the Host without its port, trimmed and lower-cased. */
export function canonicalHost(raw: string): string {
  let h = raw;
  if (h.includes(':')) {
    const v6 = /^\[([^\]]*)\](?::\d*)?$/.exec(h);
    if (v6) h = v6[1]!;
    else {
      const m = /^([^:]*):(\d*)$/.exec(h);
      if (m) h = m[1]!;
    }
  }
  return h.trim().toLowerCase();
}

function ipChecker(rule: string, name: string, ranges: string[]): (ip: string) => boolean {
  const list = new BlockList();
  for (const r of ranges) {
    const v = isIP(r);
    if (v) {
      list.addAddress(r, v === 6 ? 'ipv6' : 'ipv4');
      continue;
    }
    const m = /^(.+)\/(\d+)$/.exec(r);
    const fam = m ? isIP(m[1]!) : 0;
    if (!m || !fam || Number(m[2]) > (fam === 6 ? 128 : 32)) throw new RuleError(rule, `${name}: ${JSON.stringify(r)} is neither an IP nor a CIDR`);
    list.addSubnet(m[1]!, Number(m[2]), fam === 6 ? 'ipv6' : 'ipv4');
  }
  return (ip) => {
    const bare = ip.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, '');
    const v = isIP(bare);
    return v !== 0 && list.check(bare, v === 6 ? 'ipv6' : 'ipv4');
  };
}

/** Creates an IP/CIDR checker (Traefik's ip.Checker), for ClientIP and forwardedHeaders.trustedIPs. */
export function ipRanges(ranges: string[]): (ip: string) => boolean {
  return ipChecker('', 'ranges', ranges);
}

function queryValues(query: string, key: string): string[] | undefined {
  const params = new URLSearchParams(query);
  return params.has(key) ? params.getAll(key) : undefined;
}

function regexpArg(rule: string, name: string, src: string): RegExp {
  try {
    return goRegExp(src);
  } catch (err) {
    throw new RuleError(rule, `compiling ${name} matcher: ${(err as Error).message}`);
  }
}

function pathArg(rule: string, name: string, p: string): string {
  if (!p.startsWith('/')) throw new RuleError(rule, `${name}: path ${JSON.stringify(p)} does not start with a '/'`);
  return p;
}

const HTTP_MATCHERS: Record<string, Builder<HttpMatchInput>> = {
  ClientIP: arity('ClientIP', [1], (rule, [r]) => {
    const ok = ipChecker(rule, 'ClientIP', [r!]);
    return (req) => ok(req.clientIp);
  }),
  Method: arity('Method', [1], (_rule, [m]) => {
    const method = m!.toUpperCase();
    return (req) => req.method === method;
  }),
  Host: arity('Host', [1], (rule, [h]) => {
    if (!isAscii(h!)) throw new RuleError(rule, `invalid value ${JSON.stringify(h)} for Host matcher, non-ASCII characters are not allowed`);
    const host = h!.toLowerCase();
    return (req) => {
      const reqHost = canonicalHost(req.host);
      if (reqHost === '') return false;
      if (reqHost === host) return true;
      if (host.endsWith('.') && reqHost === host.slice(0, -1)) return true;
      return reqHost.endsWith('.') && reqHost.slice(0, -1) === host;
    };
  }),
  HostRegexp: arity('HostRegexp', [1], (rule, [h]) => {
    if (!isAscii(h!)) throw new RuleError(rule, `invalid value ${JSON.stringify(h)} for HostRegexp matcher, non-ASCII characters are not allowed`);
    const re = regexpArg(rule, 'HostRegexp', h!);
    return (req) => re.test(canonicalHost(req.host));
  }),
  Path: arity('Path', [1], (rule, [p]) => {
    const path = pathArg(rule, 'Path', p!);
    return (req) => req.path === path;
  }),
  PathRegexp: arity('PathRegexp', [1], (rule, [p]) => {
    const re = regexpArg(rule, 'PathRegexp', p!);
    return (req) => re.test(req.path);
  }),
  PathPrefix: arity('PathPrefix', [1], (rule, [p]) => {
    const prefix = pathArg(rule, 'PathPrefix', p!);
    return (req) => req.path.startsWith(prefix);
  }),
  Header: arity('Header', [2], (_rule, [k, v]) => {
    const key = k!.toLowerCase();
    return (req) => (req.headers[key] ?? []).includes(v!);
  }),
  HeaderRegexp: arity('HeaderRegexp', [2], (rule, [k, v]) => {
    const key = k!.toLowerCase();
    const re = regexpArg(rule, 'HeaderRegexp', v!);
    return (req) => (req.headers[key] ?? []).some((x) => re.test(x));
  }),
  Query: arity('Query', [1, 2], (_rule, [k, v]) => (req) => (queryValues(req.query, k!) ?? []).includes(v ?? '')),
  QueryRegexp: arity('QueryRegexp', [1, 2], (rule, [k, v]) => {
    if (v === undefined) return (req) => (queryValues(req.query, k!) ?? []).includes('');
    const re = regexpArg(rule, 'QueryRegexp', v);
    return (req) => (queryValues(req.query, k!) ?? []).some((x) => re.test(x));
  }),
};

const TCP_MATCHERS: Record<string, Builder<TcpMatchInput>> = {
  ALPN: arity('ALPN', [1], (rule, [proto]) => {
    if (proto === 'acme-tls/1') throw new RuleError(rule, 'invalid protocol value for ALPN matcher, "acme-tls/1" is not allowed');
    return (c) => c.alpn.includes(proto!);
  }),
  ClientIP: arity('ClientIP', [1], (rule, [r]) => {
    const ok = ipChecker(rule, 'ClientIP', [r!]);
    return (c) => ok(c.clientIp);
  }),
  HostSNI: arity('HostSNI', [1], (rule, [h]) => {
    // Since a HostSNI(`*`) rule is the catch-all for non-TLS TCP, it matches an empty server name too.
    if (h === '*') return () => true;
    if (!/^[A-Za-z0-9.\-:]+$/.test(h!)) throw new RuleError(rule, `invalid value for HostSNI matcher, ${JSON.stringify(h)} is not a valid hostname`);
    // Compared as written (Traefik does not lower-case the rule's value; the server name is).
    const host = h!.replace(/\.$/, '');
    return (c) => c.serverName !== '' && (c.serverName === h || c.serverName === host);
  }),
  HostSNIRegexp: arity('HostSNIRegexp', [1], (rule, [h]) => {
    if (!isAscii(h!)) throw new RuleError(rule, `invalid value for HostSNIRegexp matcher, ${JSON.stringify(h)} is not a valid hostname`);
    const re = regexpArg(rule, 'HostSNIRegexp', h!);
    return (c) => re.test(c.serverName);
  }),
};

function table<T>(builders: Record<string, Builder<T>>): Map<string, [string, Builder<T>]> {
  const m = new Map<string, [string, Builder<T>]>();
  for (const [name, b] of Object.entries(builders)) for (const s of spellings(name)) m.set(s, [name, b]);
  return m;
}

const HTTP_TABLE = table(HTTP_MATCHERS);
const TCP_TABLE = table(TCP_MATCHERS);

function compileTree<T>(rule: string, tree: RuleTree, tbl: Map<string, [string, Builder<T>]>, kind: string): Matcher<T> {
  if (tree.op !== 'leaf') {
    const l = compileTree(rule, tree.left, tbl, kind);
    const r = compileTree(rule, tree.right, tbl, kind);
    return tree.op === 'and' ? (x) => l(x) && r(x) : (x) => l(x) || r(x);
  }
  const entry = tbl.get(tree.matcher);
  if (!entry) throw new RuleError(rule, `unknown ${kind} matcher ${tree.matcher}`);
  if (tree.args.length === 0) throw new RuleError(rule, `no args for matcher ${tree.matcher}`);
  if (tree.args.some((a) => a === '')) throw new RuleError(rule, `empty args for matcher ${tree.matcher}`);
  const m = entry[1](rule, tree.args);
  return tree.not ? (x) => !m(x) : m;
}

function syntax(rule: string, ruleSyntax: string | undefined): void {
  if (ruleSyntax !== undefined && ruleSyntax !== 'v3') throw new RuleError(rule, `ruleSyntax ${JSON.stringify(ruleSyntax)} is not supported by the stand-in (v3 only)`);
}

/** Compiles an HTTP router rule; throws on a syntax error, an unknown matcher or a bad argument. */
export function compileHttpRule(rule: string, ruleSyntax?: string): Matcher<HttpMatchInput> {
  syntax(rule, ruleSyntax);
  return compileTree(rule, parseRule(rule), HTTP_TABLE, 'HTTP');
}

/** Compiles a TCP router rule; throws like {@link compileHttpRule}. */
export function compileTcpRule(rule: string, ruleSyntax?: string): Matcher<TcpMatchInput> {
  syntax(rule, ruleSyntax);
  return compileTree(rule, parseRule(rule), TCP_TABLE, 'TCP');
}

/** Default priority of an HTTP router: the rule's length (Go `len`, bytes). */
export function httpRulePriority(rule: string): number {
  return Buffer.byteLength(rule);
}

/** Whether a TCP rule is exactly the catch-all `HostSNI(\`*\`)` (in any accepted spelling). */
export function isTcpCatchAll(rule: string): boolean {
  const t = parseRule(rule);
  return t.op === 'leaf' && !t.not && t.args.length === 1 && t.args[0] === '*' && t.matcher.toLowerCase() === 'hostsni';
}

/** Default priority of a TCP router: the rule's length, or -1 for `HostSNI(\`*\`)` alone. */
export function tcpRulePriority(rule: string): number {
  try {
    return isTcpCatchAll(rule) ? -1 : Buffer.byteLength(rule);
  } catch {
    return Buffer.byteLength(rule);
  }
}

/**
 * Tree.ParseMatchers: the (lower-cased) values of every leaf named exactly `matcher` (negated or
 * not, as in v3.1). Used for `Host` (which SNI names an HTTPS router claims) and `HostSNI`.
 */
export function ruleValues(rule: string, matcher: string): string[] {
  const out: string[] = [];
  const walk = (t: RuleTree): void => {
    if (t.op === 'leaf') {
      if (t.matcher === matcher) out.push(...t.args.map((a) => a.toLowerCase()));
    } else {
      walk(t.left);
      walk(t.right);
    }
  };
  walk(parseRule(rule));
  return out;
}
