import { backendCommand } from "./service-backends.js";

export default backendCommand("remove");
