"""The emulator's vocabulary: plain lowercase English words, one picked per voiced interval.

The order is part of the protocol contract with tests (a word is chosen by index), so only append.
"""

from __future__ import annotations

_WORD_TEXT = """
    able about above across after again against air all almost alone along also always among
    and animal answer any apple area around ask away baby back ball bank base basket bear beauty
    because bed before began begin behind bell best better between big bird black blue boat body
    bone book both bottom box boy bread bridge bright bring brother brown build busy but buy call
    calm came camp can car card care carry case cat catch cause center chair change check child
    city class clean clear clock close cloud coat cold color come common cook cool copy corn
    corner could count country course cover cross crowd cup dark day deep desk dinner direct dog
    door down draw dream dress drink drive dry during each early earth east easy eat edge egg
    eight empty end enough even evening ever every eye face fact fall family farm fast father feel
    field fill find fine fire first fish five floor flower fly follow food foot forest form four
    free fresh friend front fruit full game garden gate gentle gift girl give glad glass gold good
    grass great green ground group grow half hand happy hard hat have head hear heart heavy help
    here high hill hold home honey hope horse hot hour house idea inside iron island just keep
    kind king kitchen know lake land large last late laugh lead leaf learn left letter light line
    lion list listen little live long look love low lucky machine main make many map mark market
    matter meadow meet middle milk mind minute moon morning mother mountain move music name near
    never new next nice night noise north note number ocean offer often old open orange order
    other over page paint paper park part party path pencil people pick piece place plain plant
    play please pocket point pond poor quick quiet rain reach read ready real red river road rock
    room round row run safe salt same sand save school sea season seat second see seed send seven
    shape share sheep shell shine ship shoe short show side sign silver simple sing sister sit six
    sky sleep slow small smile snow soft some song soon sound south space speak spring square
    stand star start station stay step stone store story street strong summer sun sure sweet
    table tail take talk tall tea teach tell ten thank thing think three time today together tool
    top town track train tree true turn two under until upon valley very village visit voice
    wait walk wall warm wash watch water wave way weather week well west wheel white whole wide
    wild wind window winter wish wood word work world write yard year yellow young
    """
WORDS: tuple[str, ...] = tuple(_WORD_TEXT.split())
