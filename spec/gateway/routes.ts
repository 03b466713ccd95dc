/** Shared gateway fixtures: the golden route set and options (not a test file). */
import type { GatewayOptions, GatewayRoute } from '../../src/gateway/traefik.ts';

export const OPTS: GatewayOptions = {
  baseDomain: 'localhost',
  entryPoints: ['web'],
  poseidonUrl: 'http://poseidon:8080',
};

/** Two instances: A exposes two http ports, B one http and one tcp port (tcp is not routed yet). */
export const GOLDEN_ROUTES: GatewayRoute[] = [
  {
    instance: '0123456789abcdef01234567',
    challenge: 'web-hello',
    name: 'web',
    protocol: 'http',
    hostname: '8865fea8edb69716.web-hello.localhost',
    backend: 'poseidon-0123456789abcdef01234567:8080',
  },
  {
    instance: '0123456789abcdef01234567',
    challenge: 'web-hello',
    name: 'admin',
    protocol: 'http',
    hostname: '8865fea8edb69716-admin.web-hello.localhost',
    backend: 'poseidon-0123456789abcdef01234567:9000',
  },
  {
    instance: 'fedcba9876543210fedcba98',
    challenge: 'sqli-lab',
    name: 'web',
    protocol: 'http',
    hostname: 'e48413078d794d23.sqli-lab.localhost',
    backend: 'poseidon-fedcba9876543210fedcba98:80',
  },
  {
    instance: 'fedcba9876543210fedcba98',
    challenge: 'sqli-lab',
    name: 'nc',
    protocol: 'tcp',
    hostname: 'e48413078d794d23-nc.sqli-lab.localhost',
    backend: 'poseidon-fedcba9876543210fedcba98:31337',
  },
];
