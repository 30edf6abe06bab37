// The help screens, laid out like Go sara's so that operators find the same verbs.

import { DEFAULT_CONFIG_PATH } from "../config/config.ts";
import { VERSION } from "./version.ts";

/** `sara -h`. */
export const MAIN_HELP = `NAME:
   sara - SARA IM Server

USAGE:
   sara [global options] command [command options] [arguments...]

VERSION:
   ${VERSION}

COMMANDS:
     version
     stop     stop the running server gracefully (avoid killing it directly)
     setup    write the default configuration file
     help, h  Shows a list of commands or help for one command

   benchmark:
     makeconn  open N logged-in connections to test the connection limit
     bench     run a load scenario (conns, p2p, group, offline, cluster)

   debug:
     pprof  take a CPU profile or heap snapshot of the running server (needs --debug)

GLOBAL OPTIONS:
   --debug                   open the V8 inspector on 127.0.0.1 for 'sara pprof'
   --debug-port value        inspector port with --debug (default: 9229; 0: any free one, logged)
   --config value, -c value  set config path  (default: "${DEFAULT_CONFIG_PATH}")
   --port value              override "port" (TCP)
   --wsport value            override "wsport"
   --rpcport value           override "rpcport"
   --nodeid value            override "nodeid"
   --nodeaddr value          override "nodeaddr" (Thrift push listener host:port)
   --datadir value           override "datadir" (embedded store)
   --dbaddr value            override "dbaddr" (Redis)
   --loglevel value          override "loglevel" (0 ERROR .. 3 DEBUG)
   --logfile value           override "logfile" ("" = stdout only)
   --pidfile value           override "pidfile"
   --help, -h                show help
   --version, -v             show current version
`;

/** `sara setup -h`. */
export const SETUP_HELP = `NAME:
   sara setup - write the default configuration file, with a random
                accesstoken and auth_secret

USAGE:
   sara setup [command options]

OPTIONS:
   --out value, -o value  config file path (default: "${DEFAULT_CONFIG_PATH}")
   --force, -f            overwrite an existing file
`;

/** \`sara stop -h\`. */
export const STOP_HELP = `NAME:
   sara stop - stop the running server gracefully

USAGE:
   sara stop [command options]

OPTIONS:
   --pidfile value           pid file of the server (default: "pidfile" of the config)
   --config value, -c value  config path, to find its "pidfile"
`;
