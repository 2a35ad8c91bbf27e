using Reloc.Cli;

return await CliApp.RunAsync(args);
