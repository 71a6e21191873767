import { inspectCommand } from "../inspect.js";
import { isServiceResource, servicePath } from "../wire.js";

export default inspectCommand({ noun: "service", path: (ref) => servicePath(ref), is: isServiceResource });
