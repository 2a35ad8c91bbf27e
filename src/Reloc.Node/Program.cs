using System.CommandLine;
using Reloc.Node;

SocketTuning.Apply();
var root = new RootCommand("Reloc site node: serves virtual disks over NBD.");
root.Subcommands.Add(ServeCommand.Create());
root.Subcommands.Add(ProxyCommand.Create());
root.Subcommands.Add(WanLinkCommand.Create());
root.Subcommands.Add(Reloc.Node.Demo.DemoCommand.Create());
SiteCommand.AddTo(root);
var parsed = root.Parse(args);
// Signals are ours to handle (graceful drain on SIGTERM), not the parser's.
return await parsed.InvokeAsync(new InvocationConfiguration { ProcessTerminationTimeout = null });
