using System.Threading.Channels;
using Akka.Actor;
using static Reloc.Actors.History.HistoryProtocol;

namespace Reloc.Actors.History;

/// <summary>
/// A live follow of a node's <see cref="RelocationHistory"/> for a reader outside the actor system (an HTTP
/// server-sent-events stream): a temporary actor subscribes and pushes each event into a bounded channel. A slow
/// reader never holds the actor up: when the channel is full the oldest event is dropped (<see cref="Dropped"/>
/// counts them; a reader that cares asks <see cref="GetEvents"/> from the last Seq it saw). Disposing stops the
/// actor (which unsubscribes it) and ends the stream; so does the history stopping.
/// </summary>
public sealed class RelocationEventFeed : IAsyncDisposable
{
    public const int DefaultCapacity = 1024;

    private readonly Channel<HistoryEntry> _channel;
    private readonly IActorRef _actor;
    private long _dropped;

    private RelocationEventFeed(ActorSystem system, IActorRef history, long? afterSequence, int capacity, TaskCompletionSource subscribed)
    {
        _channel = Channel.CreateBounded<HistoryEntry>(new BoundedChannelOptions(capacity)
        {
            FullMode = BoundedChannelFullMode.DropOldest,
            SingleWriter = true,
        }, _ => Interlocked.Increment(ref _dropped));
        _actor = system.ActorOf(Akka.Actor.Props.Create(() => new FeedActor(history, afterSequence, _channel.Writer, subscribed)));
    }

    /// <summary>Follows <paramref name="history"/> from now on (<paramref name="afterSequence"/> null), or from the event
    /// after that Seq (its backlog first, then live, no gap). Completes once subscribed: no event published after it
    /// returns is missed.</summary>
    public static async Task<RelocationEventFeed> OpenAsync(ActorSystem system, IActorRef history, long? afterSequence = null,
        int capacity = DefaultCapacity, TimeSpan? timeout = null, CancellationToken cancellation = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        var subscribed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var feed = new RelocationEventFeed(system, history, afterSequence, capacity, subscribed);
        try
        {
            await subscribed.Task.WaitAsync(timeout ?? TimeSpan.FromSeconds(10), cancellation);
            return feed;
        }
        catch
        {
            await feed.DisposeAsync();
            throw;
        }
    }

    /// <summary>Events dropped because the reader was behind by more than the channel's capacity.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>The events as they come (oldest first); ends when the feed is disposed or the history stops.</summary>
    public IAsyncEnumerable<HistoryEntry> ReadAllAsync(CancellationToken cancellation = default) => _channel.Reader.ReadAllAsync(cancellation);

    public async ValueTask DisposeAsync()
    {
        try { await _actor.GracefulStop(TimeSpan.FromSeconds(5)); }
        catch (TaskCanceledException) { } // already stopped, or the system is shutting down: nothing left to stop
        _channel.Writer.TryComplete();
    }

    private sealed class FeedActor : ReceiveActor
    {
        private readonly IActorRef _history;
        private readonly long? _after;
        private readonly ChannelWriter<HistoryEntry> _writer;
        private readonly TaskCompletionSource _subscribed;

        public FeedActor(IActorRef history, long? afterSequence, ChannelWriter<HistoryEntry> writer, TaskCompletionSource subscribed)
        {
            (_history, _after, _writer, _subscribed) = (history, afterSequence, writer, subscribed);
            // TryWrite never waits: a full channel drops its oldest event.
            Receive<HistoryEvents>(backlog =>
            {
                foreach (var e in backlog.Events) _writer.TryWrite(e);
                _subscribed.TrySetResult();
            });
            Receive<HistoryEntry>(e => _writer.TryWrite(e));
            Receive<Terminated>(t => t.ActorRef.Equals(_history), _ => Context.Stop(Self));
        }

        protected override void PreStart()
        {
            Context.Watch(_history);
            _history.Tell(new Subscribe(Self, _after));
        }

        protected override void PostStop()
        {
            _history.Tell(new Unsubscribe(Self));
            _writer.TryComplete();
            _subscribed.TrySetCanceled();
        }
    }
}
