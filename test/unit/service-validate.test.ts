/** The service routes' body parser under fast-check: whatever JSON arrives, it fails only as a 400. */
import test from "ava";
import fc from "fast-check";
import { parseBackend, parseCreateService } from "../../lib/api/service-validate.js";
import { TrellisError } from "../../lib/common/errors.js";
import { SERVICE_NAME } from "../../lib/ingress/spec.js";

function onlyInvalidArgument(parse: () => unknown): boolean {
  try {
    parse();
  } catch (err) {
    if (!(err instanceof TrellisError) || err.code !== "INVALID_ARGUMENT") throw err;
  }
  return true;
}

test("property: arbitrary JSON, or nearly valid bodies, only ever fail as INVALID_ARGUMENT", (t) => {
  fc.assert(
    fc.property(
      fc.jsonValue(),
      (v) => onlyInvalidArgument(() => parseCreateService(v)) && onlyInvalidArgument(() => parseBackend(v)),
    ),
    { numRuns: 500 },
  );
  const any = fc.jsonValue({ maxDepth: 2 });
  const nearly = fc.record(
    {
      Name: fc.oneof(fc.constant("web"), any),
      Networks: fc.oneof(fc.constant(["n"]), any),
      EndpointMode: fc.oneof(fc.constantFrom("vip", "dnsrr"), any),
      Ports: fc.oneof(
        fc.array(
          fc.record(
            {
              Protocol: fc.oneof(fc.constantFrom("tcp", "udp"), any),
              TargetPort: fc.oneof(fc.integer({ min: -1, max: 70000 }), any),
              PublishedPort: fc.oneof(fc.integer({ min: -1, max: 70000 }), any),
              PublishMode: fc.oneof(fc.constantFrom("ingress", "host"), any),
            },
            { requiredKeys: [] },
          ),
        ),
        any,
      ),
      HealthTcp: fc.oneof(fc.integer({ min: 0, max: 70000 }), any),
      Labels: any,
    },
    { requiredKeys: [] },
  );
  fc.assert(
    fc.property(nearly, (body) => {
      try {
        const input = parseCreateService(body);
        // What passes is what the daemon may rely on.
        return (
          SERVICE_NAME.test(input.name) &&
          input.networks.length > 0 &&
          input.ports.every((p) => p.target >= 1 && p.target <= 65535)
        );
      } catch (err) {
        return onlyInvalidArgument(() => {
          throw err;
        });
      }
    }),
    { numRuns: 1000 },
  );
  t.pass();
});
