import { networkPath } from "../client.js";
import { inspectCommand } from "../inspect.js";
import { isNetworkResource } from "../wire.js";

export default inspectCommand({ noun: "network", path: (ref) => networkPath(ref), is: isNetworkResource });
