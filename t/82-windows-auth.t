#!/usr/bin/perl

# Windows sign-in (Kerberos and NTLM, a connection at a time) when a
# server breaks for signed-in Outlook: its failures on bound connections
# count toward ejection, as the users they are (NTLM's DOMAIN\user, a
# Kerberos sign-in per connection); once it is out, its clients sign in
# again elsewhere; healed, it comes back through a new sign-in sent to
# it as its trial.  A bound request cannot be sent to another server
# (its sign-in is its connection's), so failures reach the clients until
# the server is out: at most `fails` of them, from `users` users.  An
# NTLM trial is its handshake: the challenge, then the answer to it on
# the connection kept for it, which brings the server back.

use FindBin;
use lib "$FindBin::Bin/lib";
use EH::Test;
use EH::Front;
use EH::Ntlm;

my $farm = farm(tls => 1);

sub mapi_routes {
    my ($broken) = @_;
    for my $b ($farm->servers) {
        $b->heal;
        $b->prepend({ name => 'mapi', path => '^/mapi/', ntlm => 1 });
    }
    $farm->server('EXCH2')->prepend({ name => 'mapi-500', path => '^/mapi/',
        ntlm => 1, status => 500,
        add_headers => [ [ 'X-FEServer' => 'EXCH2' ] ] }) if $broken;
}

for my $scheme (qw(Kerberos NTLM)) {
    mapi_routes(0);
    my $ng = EH::Front::nginx($farm,
        upstream => "keepalive 16;\nexchange_health_eject time=2s;");
    $ng->start;

    my @c = map { EH::Ntlm::outlook(port => $ng->port, scheme => $scheme,
                                    user => "$scheme$_", requests => 1) } 1 .. 12;
    is scalar(grep { $_->{signed_in} } @c), 12, "$scheme: twelve clients signed in";
    my @on2 = grep { $_->{bodies}[-1] =~ /on EXCH2/ } @c;
    ok @on2 >= 2, "$scheme: some of them on EXCH2 (" . scalar(@on2) . ')';

    # EXCH2 breaks for signed-in MAPI
    mapi_routes(1);
    # until it is out: after that its time could run out, and a client
    # signing in again could meet it as its trial
    my ($seen, @st) = (0);
    ROUND: for my $round (1 .. 3) {
        for my $i (0 .. $#c) {
            my ($st, $r) = EH::Ntlm::again($c[$i]{client}, scheme => $scheme,
                                            user => "$scheme$i");
            $seen++ if ($r->{status} // 0) != 200;
            push @st, "@$st";
            last ROUND if EH::Front::changes($ng, 'ejected');
        }
    }
    my @ej = EH::Front::changes($ng, 'ejected');
    is scalar(@ej), 1, "$scheme: EXCH2 taken out by its bound failures"
        or diag join "\n", grep { /exchange_health/ } split /\n/, $ng->error_log;
    is $ej[0]{addr}, $farm->server('EXCH2')->addr, "$scheme: ... EXCH2" if @ej;
    ok $seen <= 3, "$scheme: at most 3 failures reached clients ($seen)";

    # after that, every client is answered, signed in elsewhere if it must
    my $ok = 0;
    for my $i (0 .. $#c) {
        my ($st, $r) = EH::Ntlm::again($c[$i]{client}, scheme => $scheme,
                                        user => "$scheme$i");
        $ok++ if ($r->{status} // 0) == 200 && $r->{body} !~ /on EXCH2/;
    }
    is $ok, 12, "$scheme: every client answered by a healthy server";
    is scalar(EH::Front::changes($ng, 'farm-fault')), 0, "$scheme: no farm-wide fault";

    # healed: a new sign-in is its trial and brings it back (NTLM's
    # challenge first, then its answer on the same connection)
    {
        mapi_routes(0);
        select undef, undef, undef, 2.2;
        for my $i (1 .. 10) {
            last if EH::Front::changes($ng, 'readmitted');
            my $o = EH::Ntlm::outlook(port => $ng->port, scheme => $scheme,
                                      user => "late$i", requests => 1);
            $o->{client}->close;
        }
        is scalar(EH::Front::changes($ng, 'readmitted')), 1,
            "$scheme: healed EXCH2 back within its ejection time and 10 sign-ins"
            or diag join "\n", grep { /exchange_health/ } split /\n/, $ng->error_log;
    }
    $_->{client}->close for @c;
    $ng->stop;
}

done_testing;
