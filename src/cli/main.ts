/**
 * `stacknet <command> ...`: the one CLI entry point. Each subcommand lives in its own module and is loaded
 * only when called, so `stacknet router-agent` does not load the management server.
 */
export interface CliCommand {
  summary: string;
  run(args: string[]): Promise<number | void>;
}

const commands: Record<string, () => Promise<CliCommand>> = {
  demo: async () => (await import('./demo/demo-command.js')).demoCommand,
  migrate: async () => (await import('./migrate-command.js')).migrateCommand,
  server: async () => (await import('./server-command.js')).serverCommand,
  api: async () => (await import('./api-command.js')).apiCommand,
  doctor: async () => (await import('./doctor-command.js')).doctorCommand,
  'router-agent': async () => (await import('./router-agent-command.js')).routerAgentCommand,
  'rotate-server-key': async () => (await import('./rotate-server-key-command.js')).rotateServerKeyCommand,
  'host-agent': async () => (await import('./host-agent-command.js')).hostAgentCommand,
  netns: async () => (await import('./netns-command.js')).netnsCommand,
  host: async () => (await import('./host-command.js')).hostCommand,
};

function usage(): string {
  const lines = Object.keys(commands)
    .sort()
    .map((c) => `  ${c}`);
  return `usage: stacknet <command> [options]\n\ncommands:\n${lines.join('\n')}\n\nstacknet <command> --help for its options`;
}

export async function main(argv: string[]): Promise<number | void> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return name ? 0 : 2;
  }
  const load = commands[name];
  if (!load) {
    console.error(`stacknet: unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  return (await load()).run(rest);
}
