using Akka.Actor;
using Akka.Cluster.Tools.PublishSubscribe;
using Akka.Event;
using static Reloc.Actors.Coordinator.RelocationProtocol;

namespace Reloc.Actors.Coordinator;

/// <summary>
/// The coordinator shell's part of the relocation history: turns the core's <see cref="CoordinatorDecision.Lifecycle"/>
/// decisions into <see cref="RelocationEvent"/>s, logs each as one line, and publishes it on
/// <see cref="RelocationEvents.Topic"/> for every node's <see cref="History.RelocationHistory"/>. A completed
/// relocation's figures live with its destination's arrival (kept after it completes), so a Completed event is
/// published once the destination answered, or without figures when it does not.
/// </summary>
internal sealed class RelocationEventPublisher(IActorContext context, ILoggingAdapter log, TimeSpan askTimeout)
{
    /// <summary>A Completed event, its figures asked for, back in the coordinator's mailbox.</summary>
    public sealed record Ready(RelocationEvent Event);

    private readonly IActorRef _mediator = DistributedPubSub.Get(context.System).Mediator;

    public void Handle(CoordinatorDecision.Lifecycle l)
    {
        // Version 7: time-ordered and unique whichever node runs the singleton.
        var id = Guid.CreateVersion7(new DateTimeOffset(DateTime.SpecifyKind(l.At, DateTimeKind.Utc)));
        if (l.Kind != RelocationEventKind.Completed)
        {
            Publish(l.ToEvent(id));
            return;
        }
        SiteDirectory.SiteOf(context.System, l.To).Ask<object>(new GetProgress(l.Disk), askTimeout).PipeTo(context.Self,
            success: r => new Ready(l.ToEvent(id, r is DiskProgress p ? new RelocationTotals(p.TotalBytes, p.FetchedBytes, p.SkippedBytes, p.OnDemandFetches) : null)),
            failure: _ => new Ready(l.ToEvent(id)));
    }

    public void Publish(RelocationEvent e)
    {
        log.Write(RelocationEvents.LevelOf(e.Kind), e.Describe());
        _mediator.Tell(new Publish(RelocationEvents.Topic, e));
    }
}
