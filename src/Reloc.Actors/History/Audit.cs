using Reloc.Actors.Coordinator;

namespace Reloc.Actors.History;

/// <summary>What a change asked of the management API (one per non-GET route). Persisted as numbers: only ever append.</summary>
public enum AuditAction { Other, CreateDisk, DeleteDisk, Relocate, SetRate, Handover, CancelRelocation, LeaveMember, DownMember, SetWeight, SetLinkBudget, DrainSite }

/// <summary>How the principal was recognised. Persisted as numbers: only ever append.</summary>
public enum AuditAuth { None, Token, Certificate, Cookie }

/// <summary>Whether the change went through (2xx) or was refused (by authentication, authorization, a bad request or the cluster).</summary>
public enum AuditOutcome { Accepted, Refused }

/// <summary>
/// One change asked of a node's management API, allowed or not: who (<paramref name="Principal"/>, a token's name or a
/// certificate's subject, "anonymous" without credentials; <paramref name="Source"/>: the client's address), what
/// (<paramref name="Action"/> on <paramref name="Target"/>, <paramref name="Detail"/> as an operator reads it), when,
/// where (<paramref name="Node"/>: the site whose API answered) and how it ended (<paramref name="Status"/>: the HTTP status).
/// Published on <see cref="AuditTopic.Name"/> so every node's <see cref="RelocationHistory"/> persists it.
/// </summary>
public sealed record AuditRecord(Guid Id, DateTime Time, string Node, string Principal, AuditAuth Auth, string Source,
    AuditAction Action, string Target, string Detail, AuditOutcome Outcome, int Status) : IRelocMessage;

public static class AuditTopic
{
    /// <summary>The DistributedPubSub topic every node's management API publishes its <see cref="AuditRecord"/>s on.</summary>
    public const string Name = "reloc-audit";
}

/// <summary>The audit records a history keeps (pure): at most <paramref name="max"/>, the oldest dropped first, each once (by id).</summary>
public sealed class AuditLog(int max)
{
    private readonly Queue<HistoryProtocol.AuditEntry> _entries = new();
    private readonly HashSet<Guid> _ids = [];

    public bool Contains(Guid id) => _ids.Contains(id);

    public bool Add(HistoryProtocol.AuditEntry entry)
    {
        if (!_ids.Add(entry.Record.Id)) return false;
        _entries.Enqueue(entry);
        while (_entries.Count > max) _ids.Remove(_entries.Dequeue().Record.Id);
        return true;
    }

    /// <summary>The newest <paramref name="count"/>, oldest first.</summary>
    public IReadOnlyList<HistoryProtocol.AuditEntry> Newest(int count) => _entries.Skip(Math.Max(0, _entries.Count - Math.Max(0, count))).ToList();

    public IReadOnlyList<HistoryProtocol.AuditEntry> All => [.. _entries];
}
