/**
 * The benchmarks' Docker engine: the lab engine (test/helpers/dockerd.ts, a dockerd inside a lab
 * host namespace) plus a kept-alive API client for timed requests.
 */
import { LabDockerd, type LabDockerdOptions } from "../../test/helpers/dockerd.js";
import type { RunResult } from "../../test/helpers/proc.js";
import { UnixHttpClient } from "./unix-http.js";

export { cgroupMode, DockerUnavailable } from "../../test/helpers/dockerd.js";
export type BenchDockerdOptions = LabDockerdOptions;

export class BenchDockerd {
  readonly api: UnixHttpClient;

  private constructor(readonly engine: LabDockerd) {
    this.api = new UnixHttpClient(engine.socket);
  }

  /** Starts dockerd and waits for its API; throws DockerUnavailable with the reason when it cannot. */
  static async start(opts: BenchDockerdOptions): Promise<BenchDockerd> {
    return new BenchDockerd(await LabDockerd.start(opts));
  }

  get socket(): string {
    return this.engine.socket;
  }

  get pid(): number {
    return this.engine.pid;
  }

  get dockerCli(): string {
    return this.engine.dockerCli;
  }

  cliEnv(): NodeJS.ProcessEnv {
    return this.engine.cliEnv();
  }

  cliArgv(args: readonly string[]): string[] {
    return this.engine.cliArgv(args);
  }

  docker(
    args: readonly string[],
    opts: { allowFail?: boolean; timeoutMs?: number } = {},
  ): Promise<RunResult> {
    return this.engine.docker(args, opts);
  }

  /** Stops dockerd (see LabDockerd.stop); closes the API client first. */
  stop(): Promise<string[]> {
    this.api.close();
    return this.engine.stop();
  }
}
