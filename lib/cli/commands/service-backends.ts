/**
 * What `service add-backend` and `service remove-backend` share, and the request that
 * `network connect --service` also makes. CONTAINER is sent as typed, like network connect's:
 * the daemon resolves netns names, paths and pid:PID.
 */
import type { ApiClient } from "../client.js";
import { type Command, defineCommand, printLine } from "../command.js";
import { ApiError, UsageError } from "../errors.js";
import { type ServiceBackendRequest, servicePath } from "../wire.js";

export async function postBackend(
  client: ApiClient,
  service: string,
  container: string,
  action: "add" | "remove",
): Promise<void> {
  const body: ServiceBackendRequest = { Container: container };
  await client.post(servicePath(service, action === "add" ? "/backends" : "/backends/remove"), body);
}

export function backendCommand(action: "add" | "remove"): Command {
  return defineCommand({
    usage: `trellis service ${action}-backend SERVICE CONTAINER [CONTAINER...]`,
    description:
      action === "add"
        ? "Make containers' endpoints on the service's networks its backends (CONTAINER: as for network connect)"
        : "Stop load-balancing the service to these containers",
    spec: {},
    args: { min: 2 },
    async run(ctx, _values, [service, ...containers]) {
      const client = await ctx.client();
      for (const container of containers) {
        if (container.trim() === "") throw new UsageError('invalid CONTAINER "": must not be empty');
      }
      let status = 0;
      // Each container on its own: one that fails does not hold back the others.
      for (const container of containers) {
        try {
          await postBackend(client, service!, container, action);
          printLine(ctx.io.stdout, container);
        } catch (err) {
          if (!(err instanceof ApiError)) throw err;
          printLine(ctx.io.stderr, err.display());
          status = 1;
        }
      }
      return status;
    },
  });
}
