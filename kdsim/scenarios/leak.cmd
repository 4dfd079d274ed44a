* Who leaked this tag? (seed case 2): the solution, step by step
.lab
* The tags holding the most paged pool
!poolused /t5 4
* Every block of the top tag, each with the verifier's log of that address
!poolfind Leak -x "!verifier 0x80 @$extret"
* Let NotMyFault run on, and check back later
g 0n30000
!poolused /t3 4
.check myfault
