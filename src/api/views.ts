import type { Instance } from '../core/instance.ts';

/** The API representation of an instance (times as ISO strings; endpoints only while running). */
export interface InstanceView {
  id: string;
  challenge: string;
  team: string;
  user?: string;
  status: Instance['status'];
  desired: Instance['desired'];
  reason?: string;
  hostname: string;
  endpoints?: Omit<Instance['endpoints'][number], 'backend'>[];
  generation: number;
  renewals: number;
  createdAt: string;
  expiresAt: string;
  maxExpiresAt: string;
  /** While queued: 1-based position and an estimate of when a place frees up. */
  queue?: { position: number; estimatedStartAt?: string };
  /** The worker it is placed on (absent until placed). */
  worker?: string;
}

export function instanceView(i: Instance, queue?: InstanceView['queue']): InstanceView {
  const v: InstanceView = {
    id: i.id,
    challenge: i.challenge,
    team: i.team,
    status: i.status,
    desired: i.desired,
    hostname: i.hostname,
    generation: i.generation,
    renewals: i.renewals,
    createdAt: new Date(i.createdAt).toISOString(),
    expiresAt: new Date(i.expiresAt).toISOString(),
    maxExpiresAt: new Date(i.maxExpiresAt).toISOString(),
  };
  if (i.user !== undefined) v.user = i.user;
  if (i.reason !== undefined) v.reason = i.reason;
  if (i.worker !== undefined) v.worker = i.worker;
  if (queue) v.queue = queue;
  if (i.status === 'running') v.endpoints = i.endpoints.map(({ backend: _b, ...e }) => e);
  return v;
}
