namespace Reloc.Actors;

/// <summary>A virtual disk's name, unique across the cluster; also its NBD export name.</summary>
public readonly record struct DiskId(string Value)
{
    public override string ToString() => Value;
}

/// <summary>Marker for everything this project persists or sends across nodes: bound to
/// <see cref="Serialization.RelocSerializer"/>, never to the default JSON serializer.</summary>
public interface IRelocMessage;
