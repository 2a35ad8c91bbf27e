namespace Reloc.Actors.Site.Core;

/// <summary>
/// The site's registry role: create (empty, from an image file, or imported from a foreign NBD server) and delete
/// disks. The image is written first and registered second, so a crash in between leaves at worst an orphan
/// file (replaced by the next create of that name), never a registered disk without data.
/// </summary>
internal sealed class Registry(SiteContext c)
{
    public void OnCreate(SiteProtocol.CreateDisk m, object replyTo)
    {
        var invalid = SiteState.ValidateName(m.Name);
        if (invalid is not null) { c.Refuse(replyTo, invalid); return; }
        if (c.State.TryGet(m.Name, out _) || c.Creating.ContainsKey(m.Name)) { c.Refuse(replyTo, $"disk '{m.Name}' already exists on site {c.Site}"); return; }
        if (m.FromFile is null && Reloc.Management.DiskSize.Validate(m.Size) is { } badSize) { c.Refuse(replyTo, badSize); return; }
        var path = c.ImagePathOf(m.Name);
        if (m.FromNbd)
        {
            c.Creating[m.Name] = new PendingImage(ImagePurpose.Import, m, replyTo, path);
            c.Emit(new SiteDecision.ProbeImport(m.Name, m.FromFile!));
            return;
        }
        c.Creating[m.Name] = new PendingImage(ImagePurpose.Create, m, replyTo, path);
        c.Emit(new SiteDecision.CreateImage(m.Name, path, m.Size, m.FromFile));
    }

    /// <summary>The import's server answered: its size is the disk's.</summary>
    public void OnImportProbed(SiteInput.ImportProbed p)
    {
        if (!c.Creating.TryGetValue(p.Disk, out var pending) || pending.Purpose != ImagePurpose.Import) return;
        c.Creating[p.Disk] = pending with { Request = ((SiteProtocol.CreateDisk)pending.Request) with { Size = p.Size } };
        c.Emit(new SiteDecision.CreateImage(p.Disk, pending.Path, p.Size));
    }

    public void OnImageCreated(PendingImage pending, SiteInput.ImageCreated created)
    {
        var m = (SiteProtocol.CreateDisk)pending.Request;
        if (pending.Purpose == ImagePurpose.Import)
        {
            // Served at once and writable (nobody else owns it); the relocation engine copies it in meanwhile.
            var id = c.NewId();
            c.Persist(new SiteEvents.IncomingAdded(m.Name, created.Size, pending.Path, m.FromFile!, 1, "", id, id, new ArrivalOptions(Hybrid: true, Rate: 0, Prefetch: true)));
        }
        else c.Persist(new SiteEvents.DiskAdded(m.Name, created.Size, pending.Path, 1));
        c.State.TryGet(m.Name, out var disk);
        c.Serve(disk);
        // A new disk: owned, or (an import) arriving and writable (nobody else owns it), nothing local yet.
        c.Reply(pending.ReplyTo, c.Info(disk, new ArrivalFacts(Recovered: false, IsOwner: true, LocalBytes: 0)));
    }

    public void OnImageFailed(PendingImage pending, SiteInput.ImageFailed f)
    {
        var m = (SiteProtocol.CreateDisk)pending.Request;
        c.Refuse(pending.ReplyTo, pending.Purpose == ImagePurpose.Import
            ? $"cannot import disk '{m.Name}' from {m.FromFile}: {f.Reason}"
            : $"cannot create disk '{m.Name}': {f.Reason}");
    }

    public void OnDelete(SiteProtocol.DeleteDisk m, object replyTo)
    {
        if (!c.State.TryGet(m.Name, out var disk)) { c.Refuse(replyTo, $"no disk named '{m.Name}' on site {c.Site}"); return; }
        if (disk.Phase != DiskPhase.Owned)
        {
            c.Refuse(replyTo, $"disk '{m.Name}' is {disk.Phase.Name()} on site {c.Site}: cancel or finish its relocation first");
            return;
        }
        if (disk.Queued is { } queued)
        {
            c.Refuse(replyTo, $"disk '{m.Name}' waits in the admission queue for a relocation to {queued.ToSite}: cancel it first (reloc relocation cancel {m.Name})");
            return;
        }
        int clients = c.Clients.GetValueOrDefault(m.Name);
        if (clients > 0 && !m.Force)
        {
            c.Refuse(replyTo, $"disk '{m.Name}' has {clients} guest client{(clients == 1 ? "" : "s")} connected on site {c.Site}: "
                + "disconnect them first, or force the delete (their connections then fail every request)");
            return;
        }
        if (clients > 0) c.Log(CoreLogLevel.Warning, $"disk {m.Name} deleted with {clients} guest client(s) connected: their requests fail from now on");
        c.Remove(disk, replyTo, new SiteProtocol.Deleted(disk.Name, clients));
    }
}
