import type Docker from 'dockerode';
import type { ContainerPlan } from '../core/runtime.ts';

const NS_PER_MS = 1_000_000;

/** Translates a ContainerPlan into Engine API create options with the hardening defaults. */
export function toCreateOptions(plan: ContainerPlan): Docker.ContainerCreateOptions {
  const exposed: Record<string, object> = {};
  const bindings: Record<string, { HostIp: string; HostPort: string }[]> = {};
  for (const port of plan.ports) {
    exposed[`${port}/tcp`] = {};
    const lease = plan.leased?.[port];
    if (lease) bindings[`${port}/tcp`] = [{ HostIp: lease.address, HostPort: String(lease.hostPort) }];
    else if (plan.publishAddress) bindings[`${port}/tcp`] = [{ HostIp: plan.publishAddress, HostPort: '' }];
  }
  const opts: Docker.ContainerCreateOptions = {
    name: plan.name,
    Image: plan.image,
    Env: Object.entries(plan.env).map(([k, v]) => `${k}=${v}`),
    Labels: plan.labels,
    ExposedPorts: exposed,
    HostConfig: {
      NetworkMode: plan.network,
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges'],
      // Debian's runsc (2022) fails to start a sandbox given a pids cgroup limit; gVisor's own
      // kernel isolates the processes, so under runsc the pids limit is left to the sandbox.
      ...(plan.runtime === 'runsc' ? {} : { PidsLimit: plan.pids }),
      Memory: plan.memoryBytes,
      MemorySwap: plan.memoryBytes,
      NanoCpus: Math.round(plan.cpu * 1e9),
      ReadonlyRootfs: plan.readOnly,
      Tmpfs: Object.fromEntries(plan.tmpfs.map((t) => [t.path, `rw,nosuid,nodev,size=${t.bytes}`])),
      ...(plan.diskBytes !== undefined ? { StorageOpt: { size: String(plan.diskBytes) } } : {}),
      Runtime: plan.runtime,
      PortBindings: bindings,
      Binds: plan.files.map((f) => `${f.hostPath}:${f.containerPath}:ro`),
      RestartPolicy: { Name: 'no' },
      LogConfig: { Type: 'json-file', Config: { 'max-size': '1m', 'max-file': '1' } },
    },
    NetworkingConfig: { EndpointsConfig: { [plan.network]: { Aliases: [plan.alias] } } },
  };
  if (plan.command) opts.Cmd = plan.command;
  if (plan.user !== undefined) opts.User = plan.user;
  if (plan.healthcheck) {
    opts.Healthcheck = {
      Test: plan.healthcheck.test,
      Interval: plan.healthcheck.intervalMs * NS_PER_MS,
      Timeout: plan.healthcheck.timeoutMs * NS_PER_MS,
      Retries: plan.healthcheck.retries,
      StartPeriod: plan.healthcheck.startPeriodMs * NS_PER_MS,
    };
  }
  return opts;
}
