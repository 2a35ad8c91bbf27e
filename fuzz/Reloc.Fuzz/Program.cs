using Reloc.Fuzz.Targets;
using SharpFuzz;

// Usage: Reloc.Fuzz TARGET          under afl-fuzz (persistent mode: many inputs per process)
//        Reloc.Fuzz TARGET FILE...  runs the files once each and says which fail (triage of findings)
//        Reloc.Fuzz client-session NBD-URI   the client target's session against a real server (seed recording)
if (args is ["client-session", var uri])
{
    await using (var client = await Reloc.Nbd.Client.NbdClient.ConnectAsync(Reloc.Nbd.Client.NbdClientOptions.FromUri(uri) with { MaxInFlight = 8 }))
        await ClientTarget.ExerciseAsync(client);
    return 0;
}
if (args.Length == 0 || !FuzzTargets.All.TryGetValue(args[0], out var target))
{
    Console.Error.WriteLine($"usage: Reloc.Fuzz TARGET [FILE...]; targets: {string.Join(", ", FuzzTargets.All.Keys)}");
    return 2;
}
if (args.Length > 1)
{
    int failed = 0;
    foreach (var file in args[1..])
    {
        try { target(File.ReadAllBytes(file)); }
        catch (Exception ex)
        {
            failed++;
            Console.WriteLine($"{file}: {ex}");
        }
    }
    Console.WriteLine($"{args.Length - 1 - failed} passed, {failed} failed");
    return failed == 0 ? 0 : 1;
}
Fuzzer.Run(stream =>
{
    using var copy = new MemoryStream();
    stream.CopyTo(copy);
    target(copy.ToArray());
});
return 0;
