// Process entry of the `mixtape` command.
import { main } from './main.js';

main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
